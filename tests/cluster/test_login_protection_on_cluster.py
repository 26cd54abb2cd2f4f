"""The integration tier's tests of login limits, hidden users and the audit trail, rerun unchanged
on the real Redis Cluster: failure counters, decoy records (in the user key's slot), the audit
stream and its entries riding in multi-slot pipelines."""

from __future__ import annotations

import pytest

from tests.integration.test_login_protection import (  # noqa: F401  (collected and run here)
    test_a_flood_of_challenges_is_cut_off,
    test_a_success_on_one_instance_resets_for_the_other,
    test_hidden_mode_walk,
    test_no_failure_is_lost_across_two_app_instances,
    test_the_limit_holds_across_two_app_instances_under_a_storm,
    test_the_stream_stays_near_its_cap,
)

pytestmark = pytest.mark.cluster
