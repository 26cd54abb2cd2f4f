"""The delivery process (``flask --app wsgi notifications deliver``): POSTs each outbox entry's
logout token to its receiver, at least once.

Any number of these run, on any hosts: they share the outbox through its consumer group
(store/outbox.py), so each entry is sent by one of them. A process holds an entry from the moment
it reads it until the receiver has it (acknowledged and deleted) or it gives up on it (moved to
the failed list), and renews its claim every third of ``LOGOUT_DELIVERY_LEASE``; entries whose
process stopped renewing (killed, its host gone) are taken over by another process after the
lease. So an entry is sent twice only when a process dies between the receiver's answer and the
acknowledgement, or stalls for longer than the lease.

One try is one POST (``application/x-www-form-urlencoded``, ``logout_token=...``) with a fresh
token. A 2xx answer delivers it. Connection errors, timeouts, 5xx and 429 are tried again after
``LOGOUT_RETRY_INITIAL`` seconds, doubling up to ``LOGOUT_RETRY_MAX`` (with a little jitter so
that many entries for one receiver do not come back at the same instant; longer when the
receiver's ``Retry-After`` asks for it, up to the same cap), until the entry is
``LOGOUT_GIVE_UP_AFTER`` seconds old. Any other answer (4xx, a redirect) is final: the entry is
given up on at once, with the receiver's status as the reason.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlencode

from redis.exceptions import RedisError

from webservice.notifications.config import NotificationSettings
from webservice.notifications.tokens import LogoutTokens
from webservice.store.outbox import LogoutOutbox, OutboxEntry

log = logging.getLogger(__name__)

USER_AGENT = "wsgate-logout-notifier"
#: The longest a read of new entries blocks (ms): well inside the Redis socket timeout.
_MAX_BLOCK_MS = 500
#: Consumers of the group that hold nothing and have been silent this long are removed.
_FORGET_CONSUMERS_AFTER_MS = 3600 * 1000


@dataclass(frozen=True)
class Answer:
    """How one POST went: the HTTP status, or the error met before there was one."""

    status: int | None
    error: str = ""
    #: Seconds the receiver asked to wait (``Retry-After`` of a 429 or 503), when it said.
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def worth_retrying(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429

    def __str__(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else self.error


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer: the token goes only where it was configured to."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def post_logout_token(url: str, token: str, timeout: float) -> Answer:
    body = urlencode({"logout_token": token}).encode("ascii")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
            return Answer(response.status)
    except urllib.error.HTTPError as error:
        return Answer(error.code, retry_after=_seconds(error.headers.get("Retry-After")))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        return Answer(None, f"{type(reason).__name__}: {reason}"[:200])


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` in seconds (its HTTP-date form is not used by receivers in practice)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


@dataclass
class _Held:
    """An entry this process holds: how often it was tried, and when to try next (monotonic)."""

    entry: OutboxEntry
    tries: int = 0
    next_try: float = 0.0


class Delivery:
    def __init__(
        self,
        outbox: LogoutOutbox,
        tokens: LogoutTokens,
        settings: NotificationSettings,
        consumer: str,
        post: Callable[[str, str, float], Answer] = post_logout_token,
    ) -> None:
        self.outbox = outbox
        self.tokens = tokens
        self.settings = settings
        self.consumer = consumer
        self.post = post
        self.lease_ms = int(settings.lease * 1000)
        self._waiting: dict[str, _Held] = {}
        self._in_flight: dict[str, tuple[_Held, Future[Answer]]] = {}
        self._next_renewal = 0.0
        self._next_take_over = 0.0
        #: POSTs in flight to one receiver at most: with several receivers, one that hangs
        #: holds at most half the slots, and the others are served meanwhile.
        self.per_receiver = (
            settings.concurrency
            if len(settings.receivers) <= 1
            else max(1, settings.concurrency // 2)
        )

    def run(self, stop: threading.Event) -> None:
        """Delivers until ``stop`` is set; then lets the POSTs in flight finish and leaves the
        entries it still holds to be taken over by the other processes."""
        joined = False
        with ThreadPoolExecutor(self.settings.concurrency, "logout-post") as pool:
            while not stop.is_set():
                try:
                    if not joined:
                        self.outbox.join()
                        joined = True
                    self.step(pool)
                except RedisError as error:
                    # A Redis that lost its data (restarted without persistence) lost the group.
                    joined = joined and "NOGROUP" not in str(error)
                    log.warning("logout notifications: Redis unavailable (%s); retrying", error)
                    stop.wait(1.0)
            try:
                for held, future in self._in_flight.values():
                    self._settle(held, future.result())
            except RedisError as error:
                # What was not settled is sent again by whoever takes it over.
                log.warning("logout notifications: Redis unavailable at exit (%s)", error)

    def step(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        if now >= self._next_renewal:
            self.outbox.renew(self.consumer, [*self._waiting, *self._in_flight])
            self._next_renewal = now + self.settings.lease / 3
        self._collect()
        free = self.settings.concurrency - len(self._in_flight)
        if free > 0 and now >= self._next_take_over:
            for entry in self.outbox.take_over(self.consumer, self.lease_ms, free):
                if entry.id not in self._in_flight:
                    self._waiting.setdefault(entry.id, _Held(entry))
            self.outbox.forget_idle_consumers(_FORGET_CONSUMERS_AFTER_MS)
            self._next_take_over = now + self.settings.lease / 2
        for held in sorted(self._waiting.values(), key=lambda h: h.next_try):
            if len(self._in_flight) >= self.settings.concurrency or held.next_try > now:
                break
            if self._room_for(held.entry):
                self._start(pool, held)
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            in_flight = [future for _held, future in self._in_flight.values()]
            wait(in_flight, timeout=_MAX_BLOCK_MS / 1000, return_when=FIRST_COMPLETED)
            return
        # Entries held back for their receiver's share wait for one of its POSTs to finish.
        ready = (h.next_try for h in self._waiting.values() if self._room_for(h.entry))
        due = min(ready, default=now + 1.0)
        block_ms = int(min(_MAX_BLOCK_MS, max(1.0, (due - now) * 1000)))
        if self._in_flight:
            block_ms = min(block_ms, 20)
        for entry in self.outbox.read_new(self.consumer, free, block_ms):
            if self._room_for(entry):
                self._start(pool, _Held(entry))
            else:
                self._waiting[entry.id] = _Held(entry)

    def _room_for(self, entry: OutboxEntry) -> bool:
        url = entry.notice.url
        busy = sum(1 for held, _future in self._in_flight.values() if held.entry.notice.url == url)
        return busy < self.per_receiver

    def _start(self, pool: ThreadPoolExecutor, held: _Held) -> None:
        self._waiting.pop(held.entry.id, None)
        token = self.tokens.sign(held.entry.notice)
        future = pool.submit(self.post, held.entry.notice.url, token, self.settings.timeout)
        self._in_flight[held.entry.id] = (held, future)

    def _collect(self) -> None:
        for entry_id, (held, future) in list(self._in_flight.items()):
            if future.done():
                del self._in_flight[entry_id]
                self._settle(held, future.result())

    def _settle(self, held: _Held, answer: Answer) -> None:
        entry = held.entry
        held.tries += 1
        if answer.delivered:
            self.outbox.delivered(entry.id)
            log.debug("logout notification %s delivered to %s", entry.id, entry.notice.url)
            return
        age = time.time() - entry.written_ms / 1000
        if not answer.worth_retrying or age >= self.settings.give_up_after:
            why = f"{answer} after {held.tries} tries"
            self.outbox.give_up(entry, why)
            log.warning(
                "logout notification %s to %s given up on: %s", entry.id, entry.notice.url, why
            )
            return
        backoff = min(self.settings.retry_max, self.settings.retry_initial * 2 ** (held.tries - 1))
        wait_for = backoff * random.uniform(0.8, 1.0)
        if answer.retry_after is not None:
            wait_for = max(wait_for, min(answer.retry_after, self.settings.retry_max))
        held.next_try = time.monotonic() + wait_for
        self._waiting[entry.id] = held
