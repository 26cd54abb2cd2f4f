"""The logout-notification settings: receivers as URLs or objects, refused when malformed (the
app does not start with them), the token lifetime capped at 120 s, the issuer's default."""

from __future__ import annotations

import pytest

from webservice import settings
from webservice.notifications.config import (
    NotificationSettings,
    NotificationSettingsError,
    parse_receivers,
)
from webservice.store.outbox import Receiver


def test_receivers_are_urls_or_objects_with_an_audience():
    assert parse_receivers(["https://a.example/bc", {"url": "http://b.example", "audience": "b"}]) == (
        Receiver("https://a.example/bc", "https://a.example/bc"),
        Receiver("http://b.example", "b"),
    )


@pytest.mark.parametrize(
    "raw", ["https://a.example", [1], ["ftp://a.example"], [{"audience": "x"}], ["http://"]]
)
def test_malformed_receivers_are_refused(raw):
    with pytest.raises(NotificationSettingsError):
        parse_receivers(raw)


def test_the_token_lifetime_is_capped_and_the_issuer_defaults_to_the_public_origin():
    config = {
        **settings.defaults(),
        "LOGOUT_RECEIVERS": ["https://rp.example/bc"],
        "LOGOUT_TOKEN_TTL": 600,
        "PUBLIC_ORIGINS": ["https://gw.example", "https://other.example"],
    }
    read = NotificationSettings.of(config)
    assert (read.token_ttl, read.issuer, read.enabled) == (120, "https://gw.example", True)
    assert read.timeout_notice_window == settings.LOGOUT_TIMEOUT_NOTICE_WINDOW
    off = NotificationSettings.of(settings.defaults())
    assert (off.enabled, off.issuer, off.timeout_notice_window) == (False, "", 0)
