"""What ``/metrics`` shows of the logout notifications, read from Redis at each scrape (the
delivery processes run apart from gunicorn, on any host; the outbox is where they all meet):

``wsgate_logout_notifications_queued``
    notifications not yet delivered (waiting, being tried, or waiting for a retry)
``wsgate_logout_notifications_delivered_total`` / ``..._failed_total``
    delivered, and given up on, since the outbox began
``wsgate_logout_notifications_oldest_age_seconds``
    the age of the oldest one not yet delivered (0: none)

When Redis does not answer they are left out of the scrape (the other metrics still come).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.exceptions import RedisError

from webservice.store.outbox import LogoutOutbox

log = logging.getLogger(__name__)


class OutboxCollector:
    def __init__(self, outbox: LogoutOutbox) -> None:
        self.outbox = outbox

    def collect(self):  # type: ignore[no-untyped-def]
        try:
            stats = self.outbox.stats()
        except RedisError as error:
            log.warning("logout notification metrics left out: Redis unavailable (%s)", error)
            return
        yield GaugeMetricFamily(
            "wsgate_logout_notifications_queued",
            "Logout notifications not yet delivered",
            value=stats.queued,
        )
        yield CounterMetricFamily(
            "wsgate_logout_notifications_delivered",
            "Logout notifications delivered",
            value=stats.delivered,
        )
        yield CounterMetricFamily(
            "wsgate_logout_notifications_failed",
            "Logout notifications given up on",
            value=stats.failed,
        )
        yield GaugeMetricFamily(
            "wsgate_logout_notifications_oldest_age_seconds",
            "Age of the oldest logout notification not yet delivered (0: none)",
            value=stats.oldest_age_seconds,
        )


def exposition(outbox: LogoutOutbox) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(outbox))  # type: ignore[arg-type]
    return generate_latest(registry)
