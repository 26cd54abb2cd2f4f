"""The one place that builds every Redis key the gateway uses.

Layout (``P`` is ``REDIS_KEY_PREFIX``)::

    P:{F}:f              hash    a session family F: user, expiry and its members (see sessions.py)
    P:{F}:c              string  a pending challenge that will become family F when consumed
    P:user:<name>        hash    one user: id, access key, password hash, active flag and the
                                 user's outstanding challenge tokens (fields ``t:<token>``)
    P:user-ids           hash    numeric user id -> username (the directory's index)
    P:seq:user           string  the last numeric user id handed out
    P:families:<uid>     zset    family ids of one user, scored by their absolute expiry (ms)
    P:web:<sid>          string  a Flask-Session web session (its data names its family)
    P:secret-key         string  Flask's signing key, when none is configured (see app.py)

Keys that one Lua script touches together share a Redis Cluster hash tag (``{F}``), so the same
scripts run unchanged on a single Redis and on a cluster. The user keys are never combined with
other keys in one command or script, so they carry no tag.
"""

from __future__ import annotations


class RedisKeys:
    """Builds the gateway's Redis keys under one prefix."""

    def __init__(self, prefix: str = "wsgate") -> None:
        self.prefix = prefix

    def family(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:f"

    def pending_challenge(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:c"

    def user(self, username: str) -> str:
        return f"{self.prefix}:user:{username}"

    def user_ids(self) -> str:
        return f"{self.prefix}:user-ids"

    def user_sequence(self) -> str:
        return f"{self.prefix}:seq:user"

    def user_families(self, user_id: int) -> str:
        return f"{self.prefix}:families:{user_id}"

    def web_session_prefix(self) -> str:
        return f"{self.prefix}:web:"

    def secret_key(self) -> str:
        return f"{self.prefix}:secret-key"
