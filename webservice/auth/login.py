"""The one login flow: limits → user → proof → family → events (audit, metrics, the host's).

Every login takes it: the API's ``login`` (the proof is MD5(challenge token + access key)), the
standalone UI's login form (the proof is a password), and the web login of a host app (its own
login view checked the user: only the last step, :meth:`LoginFlow.succeed`, runs).

Two round trips whatever happens: the user's record with its challenge tokens (and under
HIDE_UNKNOWN_USERS the name's decoy record) and the failure counters are read in one; the family
is started (with the audit entry and the counter's reset riding along), or the failure is counted
(with its audit entry), in the other. A login refused by a failure limit stops after the first,
before the proof is looked at.

A user one past MAX_FAMILIES_PER_USER live logins loses the oldest. Integrations that log in for
every job and never log out live there, so that ending costs no round trip of its own. On a
single Redis the script that starts the new family ends it (Endings.within_cap): it picks the
oldest itself, so the workers of one integration logging in at the same moment each end a
different family. Elsewhere (a Redis Cluster, REDIS_WAIT_REPLICAS, a receiver that must hear of
an ending first) it rides in the round trip that starts the new family: the first round trip
also reads the user's family index, which is keyed by the user's id, known to this process from
any earlier login of the user (:class:`LiveFamilies`). That round trip also claims whatever
the user still has beyond the cap (family_endings.ExcessClaim, one script on the index): each
family claimed by one login only, so logins racing at the cap together end exactly the excess.
What a login claims (after a race, or for a user this process did not know yet: the first login
of the user here, a name now held by another user) it ends in one round trip more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from webservice import events
from webservice.auth.endings import Endings
from webservice.auth.users import ApiUser, UserSource
from webservice.events import SessionEvent
from webservice.store.challenges import (
    DECOY_ACCESS_KEY,
    Challenge,
    ChallengeStore,
    find_proven_token,
    has_unexpired,
    proof_digest,
)
from webservice.store.client import RedisClient
from webservice.store.confirmation import NotConfirmed
from webservice.store.family_endings import FamilyCap
from webservice.store.keys import RedisKeys, same_user
from webservice.store.limits import (
    ChallengeRateLimit,
    LoginAttempt,
    LoginLimiter,
    RateLimited,
)
from webservice.store.round_trip import Change, Participant, send
from webservice.store.session_values import ClientInfo
from webservice.store.sessions import SessionStore
from webservice.store.tokens import SessionId, family_of
from webservice.store.users import (
    CHALLENGE_FIELD_PREFIX,
    User,
    UserDirectory,
    challenge_tokens,
    is_valid_username,
)

Started = TypeVar("Started")


class Refusal:
    """What a refused login may tell its client (the API maps these to wire codes)."""

    LIMITED = "limited"
    #: coreBOS's "Given user cannot be found" (only when unknown users are not hidden).
    NOT_FOUND = "not_found"
    NO_LIVE_TOKEN = "no_live_token"
    #: coreBOS's ACCESSKEY_UNDEFINED (only when unknown users are not hidden).
    NO_ACCESS_KEY = "no_access_key"
    #: coreBOS's "Given user is inactive" (only when unknown users are not hidden).
    INACTIVE = "inactive"
    BAD_CREDENTIALS = "bad_credentials"


class LoginRefused(Exception):
    """A refused login: ``reason`` is the truth (for the audit trail), ``answer`` a
    :class:`Refusal` (what the client may be told), ``retry_after`` seconds for LIMITED."""

    def __init__(self, reason: str, answer: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginRead:
    """What a login reads in its first round trip."""

    user: ApiUser | None
    #: The user's outstanding challenge tokens (token -> expiry ms), or for a name that is no
    #: user, the decoy tokens getchallenge handed out for it (HIDE_UNKNOWN_USERS).
    tokens: dict[str, int]
    #: Whether the proof given is one a login made from a token it used (the token unexpired):
    #: a replay, told that its token was used and not counted as a failure.
    replayed: bool
    #: The record read at the user source's tokens key (the directory's user hash).
    record: dict[str, str]
    attempt: LoginAttempt
    #: The user's live families as the same round trip read them, when this process knew the
    #: user's id (and it is still this name's).
    families: LiveFamilies | None = None


class LoginFlow:
    """Logs users in, for the API and for the web."""

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        users: UserSource,
        sessions: SessionStore,
        limits: LoginLimiter,
        challenges: ChallengeStore,
        challenge_rate: ChallengeRateLimit,
        endings: Endings,
        *,
        hide_unknown_users: bool,
        max_families: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.users = users
        self.sessions = sessions
        self.limits = limits
        self.challenges = challenges
        self.challenge_rate = challenge_rate
        self.endings = endings
        self.max_families = max(1, int(max_families))
        self.hide = hide_unknown_users
        #: Usernames (as keys.same_user) -> the id a login last found for them, at most
        #: KNOWN_IDS of them: what lets a login read its user's family index in its first round
        #: trip (the index is keyed by id). Checked against the record it reads.
        self._known_ids: dict[str, int] = {}

    # --- the API ----------------------------------------------------------------------------

    def challenge(self, username: str, address: str | None = None) -> Challenge | None:
        """A new challenge token for ``username`` (getchallenge), asked from client ``address``;
        ``None`` for a name that is no user, unless unknown users are hidden: then it gets a
        decoy token (store/challenges.py). Raises :class:`LoginRefused` (LIMITED) when the
        address is over its getchallenge rate (none is taken without an ``address``)."""
        users = self.users
        if users.known_by_redis:
            who = "check"
        else:
            who = "known" if users.lookup(username) is not None else "unknown"
        bucket = self.challenge_rate.bucket(address) if address is not None else None
        try:
            return self.challenges.issue(
                username,
                users.tokens_key(username),
                who,
                decoys=self.hide,
                address=address,
                bucket=bucket,
            )
        except RateLimited as limited:
            raise LoginRefused(
                "challenge_rate", Refusal.LIMITED, -(-limited.wait_ms // 1000)
            ) from None

    def api_login(self, username: str, proof: str, client: ClientInfo) -> tuple[SessionId, ApiUser]:
        """A new API session for a user that proves its access key against a challenge token;
        raises :class:`LoginRefused`."""
        proof_hash = proof_digest(proof)
        read = self.read(username, client, "api", decoys=self.hide, proof_hash=proof_hash)
        try:
            user, token = self._proven_token(read, username, proof)
        except LoginRefused as refused:
            if refused.reason == "token_used":
                self._refuse_used(username, client, read.attempt)
            self.fail(read.attempt, username, client, "api", refused)
        session_id = SessionId.for_challenge(token)
        opened = self.succeed(
            user.id,
            user.username,
            client,
            "api",
            session_id.handle,
            lambda riders, ended, cap: (
                self.sessions.open_from_challenge(
                    token, session_id, user.id, user.username, client, riders, ended, cap
                )
                or None
            ),
            [read.attempt.success(), self._spent(token, username, read.record, proof_hash)],
            read.families,
        )
        if opened is None:
            # The proof was right, but the token was used a moment ago.
            self._refuse_used(username, client, read.attempt)
        read.attempt.remember(int(time.time() * 1000))
        return session_id, user

    def _refuse_used(self, username: str, client: ClientInfo, attempt: LoginAttempt) -> NoReturn:
        """Refuses a proof made from a token a login used: not a guess, not counted."""
        refused = LoginRefused("token_used", Refusal.NO_LIVE_TOKEN)
        self._announce_failure(username, client, "api", refused, attempt).done()
        raise refused

    def _spent(
        self, token: str, username: str, record: dict[str, str], proof_hash: str
    ) -> Participant:
        """The used ``token`` spent (``proof_hash``: its proof's), riding with the family it
        starts."""
        field = record.get(CHALLENGE_FIELD_PREFIX + token, "")
        return self.challenges.spent(
            token, self.users.tokens_key(username), field, username, proof_hash
        )

    def _proven_token(self, read: LoginRead, username: str, proof: str) -> tuple[ApiUser, str]:
        """The active user and the token the proof was made from; else raises LoginRefused.

        coreBOS's order: user, token, access key, proof, active. With unknown users hidden, a
        name that is no user, a user without an access key and an inactive user fail like a wrong
        proof, after the same work (their proof is checked against a key nobody knows).
        """
        hide = self.hide
        user, tokens = read.user, read.tokens
        hidden = Refusal.BAD_CREDENTIALS
        if user is None and not is_valid_username(username):
            raise LoginRefused("invalid_username", hidden if hide else Refusal.NOT_FOUND)
        if user is None and not hide:
            raise LoginRefused("unknown_user", Refusal.NOT_FOUND)
        if read.replayed:
            raise LoginRefused("token_used", Refusal.NO_LIVE_TOKEN)
        if not has_unexpired(tokens):
            reason = "unknown_user" if user is None else "no_live_token"
            raise LoginRefused(reason, Refusal.NO_LIVE_TOKEN)
        if user is not None and user.access_key is None and not hide:
            raise LoginRefused("no_access_key", Refusal.NO_ACCESS_KEY)
        access_key = user.access_key if user is not None else None
        token = find_proven_token(tokens, access_key or DECOY_ACCESS_KEY, proof)
        if user is None:
            raise LoginRefused("unknown_user", hidden)
        if access_key is None:
            raise LoginRefused("no_access_key", hidden)
        if token is None:
            raise LoginRefused("wrong_key", hidden)
        if not user.active:
            raise LoginRefused("inactive", hidden if hide else Refusal.INACTIVE)
        return user, token

    # --- a password (the standalone server's login form) ---------------------------------------

    def password_login(
        self,
        username: str,
        password: str,
        client: ClientInfo,
        directory: UserDirectory,
        start: Callable[[User, Sequence[Participant]], Started],
    ) -> Started:
        """Logs a user of the Redis directory in with its password: ``start`` starts the web
        login, given what must ride with it (the failure counter's reset); raises LoginRefused.
        Always one Argon2 verification, whatever the reason for a refusal."""
        read = self.read(username, client, "web", decoys=False)
        # With the directory as the user source, the record read is the user's own hash.
        user = User.from_fields(username, read.record) if "id" in read.record else None
        reason = directory.password_failure(user, password)
        if reason is not None:
            if not is_valid_username(username):
                reason = "invalid_username"
            refused = LoginRefused(reason, Refusal.BAD_CREDENTIALS)
            self.fail(read.attempt, username, client, "web", refused)
        assert user is not None
        started = start(user, [read.attempt.success()])
        read.attempt.remember(int(time.time() * 1000))
        return started

    # --- the steps ----------------------------------------------------------------------------

    def read(
        self,
        username: str,
        client: ClientInfo,
        via: str,
        *,
        decoys: bool,
        proof_hash: str | None = None,
    ) -> LoginRead:
        """Reads the user's record with its tokens (and with ``decoys`` the name's decoy record,
        for a user as for a name that is no user: the same work either way), whether the proof
        whose hash is ``proof_hash`` (challenges.proof_digest) is one a login used, and the
        failure counters, in one round trip. Raises LoginRefused (LIMITED) when a limit holds."""
        attempt = self.limits.attempt(username, client.address)
        valid = is_valid_username(username)
        # The user's families are read only where the script that opens one cannot keep the cap.
        reads_families = valid and not self.endings.one_step()
        known_id = self._known_ids.get(same_user(username)) if reads_families else None
        families = None
        if known_id is not None:
            families = LiveFamilies(self.keys.user_families(known_id))
        elif reads_families and decoys:
            # Hidden users: the same commands for a user this process does not know yet as for
            # one it knows, and for a name that is no user.
            families = LiveFamilies(self.keys.no_user_families())

        def own(pipe: Any) -> None:
            if valid:
                # The record before the spent proofs: a login that spends a token meanwhile
                # leaves it in the one or the other (challenges._SpentToken).
                pipe.hgetall(self.users.tokens_key(username))
                if decoys:
                    pipe.hgetall(self.keys.decoy_challenges(username))
                if proof_hash is not None:
                    pipe.zscore(self.keys.spent_challenges(username), proof_hash)

        replies = send(self.client, own, [attempt] if families is None else [attempt, families])
        record = replies[0] if valid else {}
        user = self.users.from_record(username, record) if valid else None
        if user is None or user.id != known_id:
            families = None  # read for the same commands only, or for the id the name had
            if user is not None and reads_families:
                self._remember_id(username, user.id)
        tokens: dict[str, int] = {}
        if valid and (user is not None or decoys):
            tokens = challenge_tokens(record if user is not None else replies[1])
        used_until = replies[-1] if valid and proof_hash is not None else None
        replayed = used_until is not None and used_until > time.time() * 1000
        wait = attempt.retry_after
        if wait is not None:
            refused = LoginRefused("limited", Refusal.LIMITED, wait)
            self._announce_failure(username, client, via, refused, attempt).done()
            raise refused
        return LoginRead(user, tokens, replayed, record, attempt, families)

    def _remember_id(self, username: str, user_id: int) -> None:
        known = self._known_ids
        if len(known) >= KNOWN_IDS:
            # Start over rather than drop one: a swap is safe with threads, a del of the first
            # key is not (two threads may pick the same one).
            known = self._known_ids = {}
        known[same_user(username)] = user_id

    def fail(
        self,
        attempt: LoginAttempt,
        username: str,
        client: ClientInfo,
        via: str,
        refused: LoginRefused,
    ) -> NoReturn:
        """Counts the failure (its audit entry riding along) and raises ``refused``."""
        round_trip = self._announce_failure(username, client, via, refused, attempt)
        attempt.count_failure(round_trip.riders)
        round_trip.done()
        raise refused

    def _announce_failure(
        self,
        username: str,
        client: ClientInfo,
        via: str,
        refused: LoginRefused,
        attempt: LoginAttempt,
    ) -> events.RoundTrip:
        limited = refused.answer == Refusal.LIMITED
        event = SessionEvent.of_client(via, client, user=username).but(
            reason="" if limited else refused.reason,
            limited=limited,
            reaches_limit=not limited and refused.reason != "token_used" and attempt.reaches_limit,
        )
        round_trip = events.announce(events.login_failed, event)
        if refused.reason == "token_used":
            send(self.client, participants=round_trip.riders)
        return round_trip

    def succeed(
        self,
        user_id: int,
        username: str,
        client: ClientInfo,
        via: str,
        handle: str,
        start: Callable[[list[Participant], Sequence[str], FamilyCap | None], Started | None],
        also: Sequence[Participant] = (),
        before: LiveFamilies | None = None,
    ) -> Started | None:
        """Starts the family (``start``, given what rides in its round trip, the families ended
        in it, which its confirmation covers, and the cap its script keeps) and announces the
        login; answers what ``start`` did, ``None`` when it could not (the login is then taken
        back from the audit trail, and nobody is told it happened). A user past
        MAX_FAMILIES_PER_USER live logins loses the oldest (``family_ended``, ``family_cap``): in
        the script that starts the family where it can (Endings.within_cap), else in that same
        round trip when the first one read them (``before``), else in one more, which ends what
        that round trip claimed (Endings.claimed). (A login that loses its token to a concurrent
        one a moment before may have ended that oldest family all the same; what it claimed it
        gives back.)"""
        event = SessionEvent.of_client(via, client, user=username, handle=handle)
        round_trip = events.announce(events.login_succeeded, event)
        capped = event.but(reason="family_cap")
        in_script = self.endings.within_cap(user_id, self.max_families, capped)
        if in_script is not None:
            started = start([*round_trip.riders, *also], [], in_script.cap)
            if started is None:
                round_trip.cancel()
                return None
            in_script.made()
            round_trip.done()
            return started
        doomed = before.to_end(self.max_families) if before is not None else []
        ending = self.endings.riding(user_id, doomed, capped) if doomed else None
        # After the ending, so that it claims only what is still beyond the cap.
        excess = self.sessions.claim_excess(user_id, family_of(handle), self.max_families)
        riders = [*round_trip.riders, *also]
        if ending is not None:
            riders.append(ending.participant)
        try:
            started = start([*riders, excess], doomed, None)
        except NotConfirmed:
            if ending is not None:
                ending.made()
            if excess.claimed:
                self.endings.claimed(user_id, excess, capped)
            raise
        if ending is not None:
            ending.made()
        if started is None:
            self.sessions.release(excess)
            round_trip.cancel()
            return None
        round_trip.done()
        if excess.claimed:
            # A race left the user beyond the cap (or the first round trip did not know whose
            # families to read): this login ends exactly what it claimed, one round trip more.
            self.endings.claimed(user_id, excess, capped)
        return started


#: How many usernames' ids a LoginFlow keeps (a few bytes each).
KNOWN_IDS = 10_000


class LiveFamilies:
    """Reads how many live families a user has and the oldest of them (by absolute expiry), as
    a participant of a login's first round trip: a login that makes one too many ends the
    oldest in its second. Families that another login claimed for ending are not counted
    (family_endings.ExcessClaim: their scores are below 0)."""

    def __init__(self, index_key: str) -> None:
        self.index_key = index_key
        self.count = 0
        self.oldest: list[str] = []

    def queue(self, pipe: Any, change: Change) -> None:
        # By score: the expired and the claimed do not count (the login's second round trip
        # drops the expired). "Now"
        # is this host's clock, not Redis's (a read cannot ask for the time in the same round
        # trip): with skewed clocks, only a family within the skew of its absolute expiry can be
        # counted wrongly, and the family scripts still enforce that expiry by Redis's clock.
        now_ms = int(time.time() * 1000)
        pipe.zcount(self.index_key, now_ms, "+inf")
        pipe.zrangebyscore(self.index_key, now_ms, "+inf", start=0, num=1)

    def sent(self, replies: list[Any]) -> None:
        self.count = int(replies[0])
        self.oldest = list(replies[1])

    def to_end(self, max_families: int) -> list[str]:
        """The family a new login ends to stay within ``max_families``; none when it need not,
        or when it must end more than one (a lowered cap: the login's own count sees to it)."""
        return self.oldest[:1] if self.count + 1 - max_families == 1 else []
