"""The gateway's services, built once per process from the settings and shared by every request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from webservice.store.audit import AuditTrail
from webservice.store.challenges import ChallengeStore
from webservice.store.keys import RedisKeys
from webservice.store.limits import ChallengeRateLimit, LoginLimiter
from webservice.store.client import RedisClient, connect
from webservice.store.sessions import SessionStore
from webservice.store.users import UserDirectory

if TYPE_CHECKING:
    from webservice.api.registry import OperationRegistry

EXTENSION_KEY = "wsgate"


@dataclass(frozen=True)
class Gateway:
    settings: Mapping[str, Any]
    redis: RedisClient
    keys: RedisKeys
    users: UserDirectory
    sessions: SessionStore
    challenges: ChallengeStore
    audit: AuditTrail
    login_limits: LoginLimiter
    challenge_rate: ChallengeRateLimit
    operations: OperationRegistry

    @classmethod
    def build(
        cls,
        settings: Mapping[str, Any],
        operations: OperationRegistry,
        client: RedisClient | None = None,
    ) -> Gateway:
        """Connects lazily: nothing here talks to Redis, so the gateway starts while Redis is down."""
        client = client if client is not None else connect(settings)
        keys = RedisKeys(settings["REDIS_KEY_PREFIX"])
        return cls(
            settings=settings,
            redis=client,
            keys=keys,
            users=UserDirectory(client, keys),
            sessions=SessionStore(
                client,
                keys,
                idle_timeout=settings["SESSION_IDLE_TIMEOUT"],
                absolute_timeout=settings["SESSION_ABSOLUTE_TIMEOUT"],
            ),
            challenges=ChallengeStore(
                client,
                keys,
                ttl=settings["CHALLENGE_TTL"],
                max_outstanding=settings["CHALLENGE_MAX_OUTSTANDING"],
            ),
            audit=AuditTrail(client, keys, max_entries=settings["AUDIT_MAX_ENTRIES"]),
            login_limits=LoginLimiter(
                client,
                keys,
                user_limit=settings["LOGIN_FAILURE_LIMIT"],
                address_limit=settings["LOGIN_ADDRESS_FAILURE_LIMIT"],
                window=settings["LOGIN_FAILURE_WINDOW"],
            ),
            challenge_rate=ChallengeRateLimit(
                client,
                keys,
                rate=settings["CHALLENGE_RATE_LIMIT"],
                burst=settings["CHALLENGE_RATE_BURST"],
            ),
            operations=operations,
        )


def current_gateway() -> Gateway:
    """The gateway of the running Flask app."""
    return current_app.extensions[EXTENSION_KEY]
