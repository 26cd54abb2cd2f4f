"""The services of one app's gateway, built once from its settings and shared by every request.

Connects lazily: nothing here talks to Redis, so an app starts while Redis is down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webservice.auth.endings import Endings
from webservice.auth.login import LoginFlow
from webservice.auth.users import ApiUserLoader, HostOrDirectoryUsers, UserSource
from webservice.auth.web_login import WebLink
from webservice.notifications.config import NotificationSettings
from webservice.notifications.key_files import KeyFiles
from webservice.store.audit import AuditTrail
from webservice.store.challenges import ChallengeStore
from webservice.store.client import RedisClient, connect
from webservice.store.confirmation import Replicas
from webservice.store.keys import RedisKeys
from webservice.store.limits import ChallengeRateLimit, LoginLimiter
from webservice.store.outbox import LogoutOutbox
from webservice.store.sessions import SessionStore
from webservice.store.signing_keys import SigningKeys
from webservice.store.users import UserDirectory


@dataclass(frozen=True)
class Services:
    #: The extension's settings, by name without the ``WSGATE_`` prefix (settings.py).
    settings: Mapping[str, Any]
    redis: RedisClient
    keys: RedisKeys
    #: The Redis user directory (the standalone server's users; the ``flask users`` commands).
    users: UserDirectory
    #: Where logins find users: the host's ``api_user_loader``, else the Redis directory
    #: (``api_user_loader`` gives the loader, asked at each use).
    user_source: UserSource
    sessions: SessionStore
    challenges: ChallengeStore
    audit: AuditTrail
    login_limits: LoginLimiter
    logins: LoginFlow
    endings: Endings
    web: WebLink
    #: Logout notifications (README: Logout notifications): their settings, the outbox, and the
    #: keys that sign them.
    notifications: NotificationSettings
    outbox: LogoutOutbox
    signing_keys: SigningKeys | KeyFiles

    @classmethod
    def build(
        cls,
        settings: Mapping[str, Any],
        client: RedisClient | None = None,
        api_user_loader: Callable[[], ApiUserLoader | None] = lambda: None,
        **more: Any,
    ) -> Services:
        """``more``: the fields a subclass adds."""
        client = client if client is not None else connect(settings)
        keys = RedisKeys(settings["REDIS_KEY_PREFIX"])
        directory = UserDirectory(client, keys)
        source: UserSource = HostOrDirectoryUsers(api_user_loader, directory, keys)
        notifications = NotificationSettings.of(settings)
        sessions = SessionStore(
            client,
            keys,
            idle_timeout=settings["SESSION_IDLE_TIMEOUT"],
            absolute_timeout=settings["SESSION_ABSOLUTE_TIMEOUT"],
            max_members=settings["MAX_SESSIONS_PER_FAMILY"],
            replicas=Replicas.of(settings, keys),
            keep_timed_out=max(
                notifications.timeout_notice_window,
                # The vtiger profile tells an expired or idle session from an unknown one: the
                # record has to outlive it (one idle timeout) for a check to see why it died.
                settings["SESSION_IDLE_TIMEOUT"] if settings["WIRE_PROFILE"] == "vtiger" else 0,
            ),
        )
        limits = LoginLimiter(
            client,
            keys,
            user_limit=settings["LOGIN_FAILURE_LIMIT"],
            address_limit=settings["LOGIN_ADDRESS_FAILURE_LIMIT"],
            window=settings["LOGIN_FAILURE_WINDOW"],
        )
        challenges = ChallengeStore(
            client,
            keys,
            ttl=settings["CHALLENGE_TTL"],
            max_outstanding=settings["CHALLENGE_MAX_OUTSTANDING"],
            max_per_address=settings["CHALLENGE_MAX_PER_ADDRESS"],
            max_per_user=settings["CHALLENGE_MAX_PER_USER"],
        )
        challenge_rate = ChallengeRateLimit(
            keys, rate=settings["CHALLENGE_RATE_LIMIT"], burst=settings["CHALLENGE_RATE_BURST"]
        )
        audit = AuditTrail(client, keys, max_entries=settings["AUDIT_MAX_ENTRIES"])
        endings = Endings(sessions, audit)
        sessions.on_timeout = endings.timed_out
        logins = LoginFlow(
            client,
            keys,
            source,
            sessions,
            limits,
            challenges,
            challenge_rate,
            endings,
            hide_unknown_users=bool(settings["HIDE_UNKNOWN_USERS"]),
            max_families=settings["MAX_FAMILIES_PER_USER"],
        )
        return cls(
            settings=settings,
            redis=client,
            keys=keys,
            users=directory,
            user_source=source,
            sessions=sessions,
            challenges=challenges,
            audit=audit,
            login_limits=limits,
            logins=logins,
            endings=endings,
            web=WebLink(sessions, logins, endings),
            notifications=notifications,
            outbox=LogoutOutbox(client, keys, max_entries=notifications.max_entries),
            signing_keys=(
                KeyFiles(notifications.key_files)
                if notifications.key_files
                else SigningKeys(client, keys, keep_seconds=notifications.key_keep_seconds)
            ),
            **more,
        )
