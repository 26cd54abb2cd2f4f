"""The logout notifications on a real Redis Cluster: the integration tier's tests, rerun
unchanged over the cluster (tests/cluster/conftest.py). The outbox entries ride in a logout's
pipeline beside the family's keys, in another slot; the delivery's consumer group, the failed
list and the signing keys live on whichever masters their keys hash to."""

from __future__ import annotations

import pytest

from tests.integration.test_logout_notifications import (  # noqa: F401  (collected and run here)
    notifying_app,
    receiver,
    test_a_4xx_is_given_up_at_once_and_5xx_and_429_are_tried_again,
    test_a_rotated_key_signs_at_once_and_the_old_one_stays_published_for_a_while,
    test_an_idle_timeout_noticed_by_a_request_is_notified,
    test_given_up_after_its_age_then_retried_by_an_operator,
    test_without_receivers_nothing_is_written_and_no_keys_are_published,
)

pytestmark = pytest.mark.cluster
