"""``login``: trades a challenge token and the proof MD5(token + access key) for an API session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webservice.api.params import Params, String
from webservice.api.registry import operation
from webservice.store.audit import AuditEvent, AuditTrail
from webservice.store.challenges import DECOY_ACCESS_KEY, find_proven_token, has_unexpired
from webservice.api.context import OperationContext
from webservice.api.errors import ErrorCode, WebServiceError, too_many_requests, user_not_found
from webservice.store.limits import LoginAttempt
from webservice.store.tokens import SessionId
from webservice.store.users import LoginRecord, User, is_valid_username, webservice_user_id


class LoginParams(Params):
    username = String(required=True)
    accessKey = String(required=True)


def invalid_token() -> WebServiceError:
    return WebServiceError(ErrorCode.INVALID_AUTH_TOKEN, "Specified token is invalid or expired")


def invalid_credentials() -> WebServiceError:
    return WebServiceError(ErrorCode.INVALID_USER_CREDENTIALS, "Invalid username or password")


class LoginFailed(Exception):
    """A refused login: the reason for the audit trail and the error for the client."""

    def __init__(self, reason: str, error: WebServiceError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@operation("login", params=LoginParams, needs_session=False)
def login(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Starts an API session for a user that proves its access key against a challenge token.

    Two round trips whatever happens: the user, its tokens and the failure counters are read in
    one; the session is started (with its audit entry and the counter reset), or the failure is
    counted (with its audit entry), in the other. A login refused by a failure limit stops after
    the first, before the proof is looked at.
    """
    gateway = context.gateway
    hide = bool(gateway.settings["HIDE_UNKNOWN_USERS"])
    username = params["username"]
    attempt = gateway.login_limits.attempt(username, context.client.address)
    record = gateway.users.read_for_login(username, decoys=hide, also=attempt.queue_read)
    attempt.read(record.extra)
    wait = attempt.retry_after
    if wait is not None:
        raise too_many_requests("failed logins", wait)
    trail = gateway.audit
    try:
        user, token = _proven_token(record, username, params["accessKey"], hide)
    except LoginFailed as failure:
        _count_failure(trail, attempt, context, username, failure.reason)
        raise failure.error from None
    entry = trail.pending(
        AuditEvent.of_client("login", "api", context.client, user=user.username),
        attempt.queue_success,
    )
    session_id = gateway.sessions.open_from_challenge(
        token, user.id, user.username, context.client, also=entry
    )
    if session_id is None:
        # The proof was right, but the token was used a moment ago: not a guess, not counted.
        entry.retract(
            AuditEvent.of_client(
                "login_failed", "api", context.client, user=user.username, reason="token_used"
            )
        )
        raise invalid_token()
    return session_result(gateway.settings, session_id, user.id)


def _proven_token(
    record: LoginRecord, username: str, proof: str, hide: bool
) -> tuple[User, str]:
    """The active user and the token the proof was made from; else raises :class:`LoginFailed`.

    coreBOS's order: user, token, access key, proof, active. Under ``hide``, a name that is no user,
    a user without an access key and an inactive user fail like a wrong proof, after the same
    work (their proof is checked against a key nobody knows).
    """
    user, tokens = record.user, record.tokens
    if user is None and not is_valid_username(username):
        raise LoginFailed("invalid_username", invalid_credentials() if hide else user_not_found())
    if user is None and not hide:
        raise LoginFailed("unknown_user", user_not_found())
    if not has_unexpired(tokens):
        raise LoginFailed("unknown_user" if user is None else "no_live_token", invalid_token())
    if user is not None and user.access_key is None and not hide:
        raise LoginFailed(
            "no_access_key",
            WebServiceError(ErrorCode.ACCESSKEY_UNDEFINED, "Access key for the user is undefined"),
        )
    access_key = user.access_key if user is not None else None
    token = find_proven_token(tokens, access_key or DECOY_ACCESS_KEY, proof)
    if user is None:
        raise LoginFailed("unknown_user", invalid_credentials())
    if access_key is None:
        raise LoginFailed("no_access_key", invalid_credentials())
    if token is None:
        raise LoginFailed("wrong_key", invalid_credentials())
    if not user.active:
        raise LoginFailed(
            "inactive",
            invalid_credentials()
            if hide
            else WebServiceError(ErrorCode.AUTHENTICATION_REQUIRED, "Given user is inactive"),
        )
    return user, token


def _count_failure(
    trail: AuditTrail,
    attempt: LoginAttempt,
    context: OperationContext,
    username: str,
    reason: str,
) -> None:
    event = AuditEvent.of_client(
        "login_failed",
        "api",
        context.client,
        user=username,
        reason=reason,
        detail="limit reached" if attempt.reaches_limit else "",
    )
    attempt.count_failure(also=trail.pending(event))


def session_result(
    settings: Mapping[str, Any], session_id: SessionId, user_id: int
) -> dict[str, str]:
    """The four keys that ``login`` and ``extendsession`` answer with."""
    return {
        "sessionName": str(session_id),
        "userId": webservice_user_id(user_id),
        "version": settings["API_VERSION"],
        "vtigerVersion": settings["VTIGER_VERSION"],
    }
