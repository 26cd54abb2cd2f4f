"""The logout-notification settings (settings.py, ``LOGOUT_*``), read and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webservice.store.outbox import Receiver
from webservice.store.signing_keys import RELOAD_SECONDS

#: OpenID Connect Back-Channel Logout 1.0 recommends that logout tokens expire within two minutes.
MAX_TOKEN_TTL = 120


class NotificationSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class NotificationSettings:
    receivers: tuple[Receiver, ...]
    #: Empty when neither LOGOUT_ISSUER nor PUBLIC_ORIGINS says it (needed only to sign).
    issuer: str
    token_ttl: int
    timeout: float
    retry_initial: float
    retry_max: float
    give_up_after: float
    max_entries: int
    concurrency: int
    lease: float
    #: Seconds a timed-out family's record is kept to be noticed (0 without receivers).
    timeout_notice_window: float
    #: PEM files of the signing keys, newest first (empty: the keys live in Redis).
    key_files: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.receivers)

    @property
    def key_keep_seconds(self) -> float:
        """How long a replaced signing key stays published: its last tokens' lifetime, plus
        the time delivery processes take to notice the new key, plus a minute of clock skew."""
        return self.token_ttl + RELOAD_SECONDS + 60

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> NotificationSettings:
        origins = settings.get("PUBLIC_ORIGINS") or []
        issuer = str(settings.get("LOGOUT_ISSUER") or (origins[0] if origins else ""))
        receivers = parse_receivers(settings.get("LOGOUT_RECEIVERS") or [])
        return cls(
            receivers=receivers,
            issuer=issuer,
            token_ttl=max(1, min(MAX_TOKEN_TTL, int(settings["LOGOUT_TOKEN_TTL"]))),
            timeout=float(settings["LOGOUT_DELIVERY_TIMEOUT"]),
            retry_initial=float(settings["LOGOUT_RETRY_INITIAL"]),
            retry_max=float(settings["LOGOUT_RETRY_MAX"]),
            give_up_after=float(settings["LOGOUT_GIVE_UP_AFTER"]),
            max_entries=int(settings["LOGOUT_OUTBOX_MAX_ENTRIES"]),
            concurrency=max(1, int(settings["LOGOUT_DELIVERY_CONCURRENCY"])),
            lease=max(1.0, float(settings["LOGOUT_DELIVERY_LEASE"])),
            timeout_notice_window=(
                max(0.0, float(settings["LOGOUT_TIMEOUT_NOTICE_WINDOW"])) if receivers else 0.0
            ),
            key_files=_paths(settings.get("LOGOUT_SIGNING_KEY_FILES") or []),
        )


def _paths(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(path, str) and path for path in raw):
        raise NotificationSettingsError("WSGATE_LOGOUT_SIGNING_KEY_FILES must be a list of paths")
    return tuple(raw)


def parse_receivers(raw: Any) -> tuple[Receiver, ...]:
    """``LOGOUT_RECEIVERS``: a list of URLs or of {"url", "audience"} objects."""
    if not isinstance(raw, list):
        raise NotificationSettingsError("WSGATE_LOGOUT_RECEIVERS must be a JSON list")
    receivers = []
    for item in raw:
        if isinstance(item, str):
            url, audience = item, item
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            url = item["url"]
            audience = str(item.get("audience") or url)
        else:
            raise NotificationSettingsError(
                f"WSGATE_LOGOUT_RECEIVERS: {item!r} is neither a URL nor"
                ' {"url": ..., "audience": ...}'
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotificationSettingsError(
                f"WSGATE_LOGOUT_RECEIVERS: {url!r} is not an http(s) URL"
            )
        receivers.append(Receiver(url, audience))
    return tuple(receivers)
