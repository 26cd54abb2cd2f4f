"""A family at its cap of members (MAX_SESSIONS_PER_FAMILY), against a real redis-server: each
extension ends the oldest member other than the web login, found from the family's list of
members in creation order without reading the whole family, and that list stays bounded; dead
members (idle past the timeout) at the head of that list make the room instead."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.integration.conftest import gateway_of
from webservice.store.session_values import ClientInfo
from webservice.store.tokens import SessionId, new_family_id

pytestmark = pytest.mark.integration

CAP = 5
CLIENT = ClientInfo("127.0.0.1", "test-agent")


@pytest.fixture
def store(make_app):
    return gateway_of(make_app(MAX_SESSIONS_PER_FAMILY=CAP)).sessions


def web_login(store) -> SessionId:
    root = SessionId.new(new_family_id())
    store.open_web(root, 7, "alice", CLIENT)
    return root


def members_of(store, root: SessionId) -> set[str]:
    names = store.client.hkeys(store.keys.family(root.family_id))
    return {name[2:] for name in names if name.startswith("i:")}


def extend(store, root: SessionId) -> tuple[SessionId, str | None]:
    added = SessionId.new(root.family_id)
    extension = store.extend(root, added, CLIENT)
    assert extension is not None
    return added, extension.ended


def executed(redis) -> Counter:
    stats = redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def test_at_the_cap_the_oldest_member_ends_and_the_family_is_not_read_whole(store, real_redis):
    root = web_login(store)
    added = [extend(store, root)[0] for _ in range(CAP - 1)]
    before = executed(real_redis)
    for _ in range(3 * CAP):
        new, ended = extend(store, root)
        oldest = added.pop(0)
        assert ended == oldest.handle
        added.append(new)
        assert members_of(store, root) == {root.member, *(a.member for a in added)}
    assert executed(real_redis)["hgetall"] == before["hgetall"]


def test_members_gone_alone_are_skipped_and_the_list_stays_bounded(store, real_redis):
    root = web_login(store)
    key = store.keys.family(root.family_id)
    for _ in range(20 * CAP):
        # A member that ends alone (as an idle one does), below the cap.
        gone, _ = extend(store, root)
        real_redis.hdel(key, f"l:{gone.member}", f"i:{gone.member}")
    assert len(real_redis.hget(key, "o")) <= 2 * CAP * (len(root.member) + 1)
    added = [extend(store, root)[0] for _ in range(CAP - 1)]
    new, ended = extend(store, root)
    assert ended == added[0].handle
    assert members_of(store, root) == {root.member, *(a.member for a in added[1:]), new.member}


def test_dead_members_at_the_head_of_the_list_make_room_and_no_live_one_ends(store, real_redis):
    """Members idle past the timeout are dead already (a check of theirs would drop them, as
    nobody is told): at the cap they go first, and only as many as the new member needs."""
    root = web_login(store)
    key = store.keys.family(root.family_id)
    added = [extend(store, root)[0] for _ in range(CAP - 1)]
    for dead in added[:2]:
        real_redis.hset(key, f"l:{dead.member}", 1)  # last used in 1970
    new, ended = extend(store, root)
    assert ended is None
    assert members_of(store, root) == {root.member, *(a.member for a in added[1:]), new.member}
    newer, ended = extend(store, root)
    assert ended is None
    assert members_of(store, root) == {
        root.member, *(a.member for a in added[2:]), new.member, newer.member
    }
    _, ended = extend(store, root)
    assert ended == added[2].handle


def test_a_live_oldest_member_ends_even_when_a_younger_one_is_dead(store, real_redis):
    """The list is read from its start up to the first live member only (the cap's step stays
    short): a dead member behind it waits for its own check, or its turn."""
    root = web_login(store)
    key = store.keys.family(root.family_id)
    added = [extend(store, root)[0] for _ in range(CAP - 1)]
    real_redis.hset(key, f"l:{added[1].member}", 1)
    _, ended = extend(store, root)
    assert ended == added[0].handle
    _, ended = extend(store, root)
    assert ended is None  # the dead one made the room
    assert added[1].member not in members_of(store, root)


def test_a_family_without_the_list_still_ends_its_oldest_member(store, real_redis):
    """A family extended before the list existed: read whole, as it always was (by creation
    time in milliseconds: the extensions here are a few milliseconds apart)."""
    root = web_login(store)
    added = []
    for _ in range(CAP - 1):
        time.sleep(0.003)
        added.append(extend(store, root)[0])
    real_redis.hdel(store.keys.family(root.family_id), "o")
    new, ended = extend(store, root)
    assert ended == added[0].handle
    assert members_of(store, root) == {root.member, *(a.member for a in added[1:]), new.member}
