"""The integration tier's session tests, rerun unchanged on the real Redis Cluster.

The fixtures they ask for (real_app, make_app, real_redis, alice) are the cluster's (conftest.py):
the walk getchallenge/login/listtypes/logout with single-use tokens, a logout seen by another app
instance at once, the idle and absolute timeouts with small values, concurrent logins of one
user, one token raced by ten logins, and ``users disable`` ending every session of a user.
"""

from __future__ import annotations

import pytest

from tests.integration.test_concurrency import (  # noqa: F401  (collected and run here)
    test_a_replayed_login_does_not_hide_the_session_from_end_all_for_user,
    test_one_token_raced_by_ten_logins_yields_exactly_one_session,
    test_twenty_concurrent_logins_of_one_user_all_succeed,
)
from tests.integration.test_session_flow import (  # noqa: F401  (collected and run here)
    test_absolute_timeout_ends_even_a_busy_session,
    test_full_walk_getchallenge_login_listtypes_logout,
    test_idle_timeout_refuses_an_unused_session_and_keeps_a_busy_one,
    test_logout_in_one_app_instance_is_seen_by_another_at_once,
)

pytestmark = pytest.mark.cluster
