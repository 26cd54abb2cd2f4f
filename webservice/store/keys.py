"""The one place that builds every Redis key the gateway uses.

Layout (``P`` is ``REDIS_KEY_PREFIX``)::

    P:{F}:f              hash    a session family F: user, expiry and its members (see sessions.py)
    P:{F}:c              string  a pending challenge that will become family F when consumed
    P:{F}:e              hash    family F as it was when a revocation ended it, kept for
                                 REDIS_WAIT_RETRY_GRACE so that a retry can tell (only with
                                 REDIS_WAIT_REPLICAS; hashes of secrets, never a secret)
    P:{F}:w              string  a write in F's slot that Redis WAIT confirms (confirmation.py)
    P:user:<name>        hash    one user: id, access key, password hash, active flag and the
                                 user's outstanding challenge tokens (fields ``t:<token>``)
    P:user-ids           hash    numeric user id -> username (the directory's index)
    P:seq:user           string  the last numeric user id handed out
    P:families:<uid>     zset    family ids of one user, scored by their absolute expiry (ms)
    P:families:none      zset    never written: what a login reads in place of the family index
                                 of a name whose user id it does not know, while unknown users
                                 are hidden (the same commands for every name: auth/login.py)
    P:web:<sid>          string  a Flask-Session web session (its data names its family)
    P:secret-key         string  Flask's signing key, when none is configured (standalone/app.py)
    {P:user:<name>}:decoy  hash  challenge tokens getchallenge gave out for a name that is no user
                                 (HIDE_UNKNOWN_USERS; see challenges.py), expiring with them
    {P:user:<name>}:tokens hash  the challenge tokens of a host app's user (api_user_loader: no
                                 user hash to keep them in), expiring with the newest
    {P:user:<name>}:spent  zset  hashes of the proofs logins of the name made from the tokens
                                 they used, scored by the token's expiry (ms), capped, expiring
                                 with the newest (challenges.py)
    P:audit              stream  the audit trail of logins, extensions and logouts (see audit.py)
    P:logout-outbox      stream  logout notifications not yet delivered, one per family and
                                 receiver; consumer group ``delivery`` (see outbox.py)
    P:logout-outbox:failed     stream  notifications given up on, with why (capped)
    P:logout-outbox:delivered  string  notifications delivered, ever (a counter)
    P:logout-outbox:given-up   string  notifications given up on, ever (a counter)
    P:logout-keys        hash    the logout tokens' signing keys: kid -> JSON, and ``current``
                                 (see signing_keys.py)
    P:login-failures:user:<name>     string  failed logins of one username in the current window
    P:login-failures:address:<addr>  string  failed logins from one client address (limits.py)
    P:login-failures:user-address:<name>:<addr>  string  failed logins of a username from an address
    P:known-addresses:<name>         hash    addresses a user logged in from lately -> ms (limits.py)
    P:rate:getchallenge:<addr>       hash    the getchallenge token bucket of one client address
    P:challenges:address:<addr>      zset    the challenges issued to one client address (capped)

Every key built from a username uses its case-folded form (:func:`same_user`): usernames are
case-insensitive.

Keys that one Lua script touches together share a Redis Cluster hash tag (``{F}``), so the same
scripts run unchanged on a single Redis and on a cluster. The user keys are never combined with
other keys in one command or script, so they carry no tag; the decoy record of a name is tagged
with the whole user key (``{P:user:<name>}``), which puts it in the user key's slot, so the one
getchallenge script can look at both; and so are the name's spent proofs, which the script that
spends a token writes as it takes the token out of its record.
"""

from __future__ import annotations


def same_user(username: str) -> str:
    """The one normalisation of usernames: they are case-insensitive, as in coreBOS (MySQL's
    collation), so ``ADMIN`` is ``admin``. Every key built from a username goes through it, so no
    variant of a name has records, tokens or failure counters of its own. (Usernames are ASCII:
    store/users.py.)"""
    return username.lower()


class RedisKeys:
    """Builds the gateway's Redis keys under one prefix."""

    def __init__(self, prefix: str = "wsgate") -> None:
        self.prefix = prefix

    def family(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:f"

    def family_key_parts(self) -> tuple[str, str]:
        """What :meth:`family` puts before and after the family id: for a script that builds
        the keys of the families it finds in a user's index (a single Redis only:
        family_lua's ``index_within_cap``)."""
        head, _, tail = self.family("\0").partition("\0")
        return head, tail

    def pending_challenge(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:c"

    def ended_family(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:e"

    def confirmation(self, family_id: str) -> str:
        return f"{self.prefix}:{{{family_id}}}:w"

    def user(self, username: str) -> str:
        return f"{self.prefix}:user:{same_user(username)}"

    def user_ids(self) -> str:
        return f"{self.prefix}:user-ids"

    def user_sequence(self) -> str:
        return f"{self.prefix}:seq:user"

    def user_families(self, user_id: int) -> str:
        return f"{self.user_families_prefix()}{user_id}"

    def user_families_prefix(self) -> str:
        """What :meth:`user_families` puts before the user id: for a script that builds the key
        from the user id it reads (a single Redis only: sessions.SessionStore.END_OWN)."""
        return f"{self.prefix}:families:"

    def no_user_families(self) -> str:
        return f"{self.prefix}:families:none"

    def web_session_prefix(self) -> str:
        return f"{self.prefix}:web:"

    def secret_key(self) -> str:
        return f"{self.prefix}:secret-key"

    def decoy_challenges(self, username: str) -> str:
        return f"{{{self.user(username)}}}:decoy"

    def challenge_tokens(self, username: str) -> str:
        return f"{{{self.user(username)}}}:tokens"

    def spent_challenges(self, username: str) -> str:
        return f"{{{self.user(username)}}}:spent"

    def challenges_of_address(self, address: str) -> str:
        return f"{self.prefix}:challenges:address:{address}"

    def audit_log(self) -> str:
        return f"{self.prefix}:audit"

    def logout_outbox(self) -> str:
        return f"{self.prefix}:logout-outbox"

    def logout_outbox_failed(self) -> str:
        return f"{self.prefix}:logout-outbox:failed"

    def logout_outbox_delivered(self) -> str:
        return f"{self.prefix}:logout-outbox:delivered"

    def logout_outbox_given_up(self) -> str:
        return f"{self.prefix}:logout-outbox:given-up"

    def logout_signing_keys(self) -> str:
        return f"{self.prefix}:logout-keys"

    def login_failures_of_user(self, username: str) -> str:
        return f"{self.prefix}:login-failures:user:{same_user(username)}"

    def login_failures_of_user_at(self, username: str, address: str) -> str:
        return f"{self.prefix}:login-failures:user-address:{same_user(username)}:{address}"

    def known_addresses(self, username: str) -> str:
        return f"{self.prefix}:known-addresses:{same_user(username)}"

    def login_failures_of_address(self, address: str) -> str:
        return f"{self.prefix}:login-failures:address:{address}"

    def challenge_rate(self, address: str) -> str:
        return f"{self.prefix}:rate:getchallenge:{address}"
