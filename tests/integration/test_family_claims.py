"""Claims on a user's family index (family_endings.ExcessClaim), against a real redis-server:
what a login leaves beyond MAX_FAMILIES_PER_USER, where the script that opens its family cannot
end it itself, is claimed by that login alone, and a claimed family stays within reach of
ending all of the user's families until it is ended."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import gateway_of, run_threads
from webservice.store.round_trip import send
from webservice.store.session_values import ClientInfo
from webservice.store.tokens import SessionId, new_family_id

pytestmark = pytest.mark.integration

CLIENT = ClientInfo("127.0.0.1", "test-agent")
USER_ID = 7
CAP = 3


@pytest.fixture
def store(make_app):
    return gateway_of(make_app()).sessions


def open_families(store, count: int) -> list[str]:
    """``count`` new web families of the user, indexed by the pipeline (no cap), oldest first
    (a millisecond apart: the index orders families of the same millisecond by their ids)."""
    families = []
    for _ in range(count):
        time.sleep(0.002)
        session_id = SessionId.new(new_family_id())
        store.open_web(session_id, USER_ID, "alice", CLIENT)
        families.append(session_id.family_id)
    return families


def claim(store, own: str, most: int = CAP) -> list[str]:
    excess = store.claim_excess(USER_ID, own, most)
    send(store.client, participants=[excess])
    return list(excess.claimed)


def counted(store, real_redis) -> int:
    """Live unclaimed families, as a login's first round trip counts them (LiveFamilies)."""
    return real_redis.zcount(store.keys.user_families(USER_ID), "(0", "+inf")


def test_claims_take_the_oldest_beyond_the_cap_each_once(store, real_redis):
    families = open_families(store, CAP + 2)
    newest = families[-1]
    assert claim(store, newest) == families[:2]
    assert counted(store, real_redis) == CAP
    # Another login that sees the same index claims nothing more: the two no longer count.
    assert claim(store, families[-2]) == []
    # Its own family is never claimed, whatever its age.
    assert claim(store, families[2], most=1) == families[3:]


def test_logins_claiming_at_the_same_moment_together_claim_exactly_the_excess(
    store, real_redis
):
    families = open_families(store, CAP + 8)
    newest = families[-8:]
    claims = run_threads(8, lambda i: claim(store, newest[i]))
    claimed = [family for each in claims for family in each]
    assert len(claimed) == len(set(claimed)) == 8, "8 beyond the cap, each claimed once"
    assert counted(store, real_redis) == CAP
    claimers = [own for own, each in zip(newest, claims) if each]
    assert set(claimed) == set(families) - set(families[-2:]) - set(claimers)


def test_a_claimed_family_lives_until_its_login_ends_it(store, real_redis):
    families = open_families(store, CAP + 1)
    excess = store.claim_excess(USER_ID, families[-1], CAP)
    send(store.client, participants=[excess])
    assert list(excess.claimed) == families[:1]
    assert real_redis.exists(store.keys.family(families[0]))
    assert store.end_claimed(USER_ID, excess) == 1
    assert not real_redis.exists(store.keys.family(families[0]))
    index = store.keys.user_families(USER_ID)
    assert set(real_redis.zrange(index, 0, -1)) == set(families[1:])


def test_a_family_claimed_by_a_login_that_died_is_still_ended_with_all_of_the_user(
    store, real_redis
):
    """A worker killed between its claim and its ending leaves the family claimed: it no longer
    counts, but the sweep of expired entries keeps it listed, so revoking the user ends it."""
    families = open_families(store, CAP + 1)
    assert claim(store, families[-1]) == families[:1]
    open_families(store, 1)  # its pipeline sweeps the expired entries
    index = store.keys.user_families(USER_ID)
    assert families[0] in real_redis.zrange(index, 0, -1)
    assert store.end_all_for_user(USER_ID) == CAP + 2
    assert not any(real_redis.exists(store.keys.family(family)) for family in families)
    assert real_redis.zcard(index) == 0


def test_a_login_that_opened_nothing_gives_back_what_it_claimed(store, real_redis):
    families = open_families(store, CAP + 1)
    index = store.keys.user_families(USER_ID)
    expiry = real_redis.zscore(index, families[0])
    excess = store.claim_excess(USER_ID, families[-1], CAP)
    send(store.client, participants=[excess])
    assert real_redis.zscore(index, families[0]) == -expiry
    store.release(excess)
    assert real_redis.zscore(index, families[0]) == expiry
    assert counted(store, real_redis) == CAP + 1


def test_the_open_script_that_keeps_the_cap_leaves_a_claimed_family_to_its_login(
    store, real_redis
):
    """On a single Redis the open script keeps the cap itself; a family that a login claimed
    meanwhile (a receiver connected in between) is neither counted nor ended by it."""
    families = open_families(store, CAP + 1)
    assert claim(store, families[-1]) == families[:1]
    session_id = SessionId.new(new_family_id())
    cap = store.family_cap(USER_ID, CAP, None)
    store.open_web(session_id, USER_ID, "alice", CLIENT, cap=cap)
    assert cap.ended == 1, "one family beyond the cap, not counting the claimed"
    assert real_redis.exists(store.keys.family(families[0])), "the claimed one is its login's"
    assert not real_redis.exists(store.keys.family(families[1])), "the oldest unclaimed ended"
