"""The fuzzers' own rules about Redis, on hand-made changes: they accept what an operation does
and catch what it must not do."""

from __future__ import annotations

from tests.fuzz.world import diff, unexplained

FAMILY = "wsgate:{F}:f"
OTHER_FAMILY = "wsgate:{G}:f"
BEFORE = {
    FAMILY: ("hash", {"u": "1", "r": "m", "l:m": "1000", "i:m": "x"}),
    "wsgate:user:alice": ("hash", {"id": "1", "key": "k", "t:abc": "5"}),
    "wsgate:families:1": ("zset", {"F": 1.0}),
    "wsgate:audit": ("stream", [("1-0", {"event": "login"})]),
}


def family_with(**fields: str) -> dict:
    """BEFORE with the family's fields changed."""
    return {**BEFORE, FAMILY: ("hash", {**BEFORE[FAMILY][1], **fields})}


def test_no_handler_may_only_touch_sessions():
    touched = family_with(**{"l:m": "2000"})
    assert unexplained(diff(BEFORE, touched), [], False) == []
    added = dict(BEFORE, **{OTHER_FAMILY: ("hash", {"u": "1"})})
    assert unexplained(diff(BEFORE, added), [], False)
    rewound = family_with(**{"l:m": "10"})
    assert unexplained(diff(BEFORE, rewound), [], False)
    renamed = family_with(u="2")
    assert unexplained(diff(BEFORE, renamed), ["listtypes"], True)


def test_login_may_start_a_family_and_audit_it():
    after = dict(BEFORE)
    after[OTHER_FAMILY] = ("hash", {"u": "1"})
    after["wsgate:families:1"] = ("zset", {"F": 1.0, "G": 2.0})
    after["wsgate:audit"] = ("stream", [("1-0", {"event": "login"}), ("2-0", {"event": "login"})])
    assert unexplained(diff(BEFORE, after), ["login"], True) == []
    # A failed login may count and audit, but never start a family.
    assert unexplained(diff(BEFORE, after), ["login"], False)
    # The audit trail only grows.
    after["wsgate:audit"] = ("stream", [("2-0", {"event": "login"})])
    assert unexplained(diff(BEFORE, after), ["login"], True)


def test_login_may_only_move_one_token_to_the_spent_ones():
    before = dict(BEFORE)
    before["wsgate:user:alice"] = ("hash", {"id": "1", "key": "k", "t:abc": "5|10.0.0.1"})
    spent = dict(before)
    spent["wsgate:user:alice"] = ("hash", {"id": "1", "key": "k"})
    spent["{wsgate:user:alice}:spent"] = ("zset", [("abc", 5.0)])
    assert unexplained(diff(before, spent), ["login"], True) == []
    assert unexplained(diff(before, spent), ["login"], False)
    for fields in (
        {"id": "1", "key": "k", "t:abc": "5:spent|10.0.0.1"},
        {"id": "1", "key": "other"},
        {"id": "1", "key": "k", "t:abc": "5|10.0.0.1", "t:new": "5|x"},
        {"id": "1"},
    ):
        other = dict(before)
        other["wsgate:user:alice"] = ("hash", fields)
        assert unexplained(diff(before, other), ["login"], True), fields


def test_getchallenge_may_only_add_tokens():
    after = dict(BEFORE)
    after["wsgate:user:alice"] = ("hash", {"id": "1", "key": "k", "t:abc": "5", "t:def": "6"})
    after["wsgate:{P}:c"] = ("string", "alice")
    assert unexplained(diff(BEFORE, after), ["getchallenge"], True) == []
    after["wsgate:user:alice"] = ("hash", {"id": "1", "key": "other", "t:abc": "5"})
    assert unexplained(diff(BEFORE, after), ["getchallenge"], True)


def test_logout_may_end_families_only_when_it_succeeds():
    after = dict(BEFORE)
    del after[FAMILY]
    assert unexplained(diff(BEFORE, after), ["logout"], True) == []
    assert unexplained(diff(BEFORE, after), ["logout"], False)
    assert unexplained(diff(BEFORE, after), ["listtypes"], True)
