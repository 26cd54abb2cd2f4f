"""State per principal is bounded: a web login's family, a user's live logins, and what one
client address can leave in Redis without logging in all have caps; the oldest goes first,
audited. Over real gunicorn and a real redis-server."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

import pytest
import redis
import requests

from tests.attack.conftest import Gateway, serve_gateway
from tests.attack.test_web_login_secret import web_login

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
#: The defaults (webservice/settings.py), but for the live logins per user (1000), which this
#: gateway lowers to keep the test short.
MAX_SESSIONS_PER_FAMILY = 100
MAX_FAMILIES_PER_USER = 30
CHALLENGE_MAX_OUTSTANDING = 32
CHALLENGE_MAX_PER_ADDRESS = 64


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """gunicorn without the getchallenge rate limit (the caps are under test, not the rate)."""
    # Decoys on (the default, and the worst case for what an address leaves behind).
    extra_env = {
        "WSGATE_CHALLENGE_RATE_LIMIT": "0",
        "WSGATE_HIDE_UNKNOWN_USERS": "true",
        "WSGATE_MAX_FAMILIES_PER_USER": str(MAX_FAMILIES_PER_USER),
    }
    with serve_gateway(tmp_path_factory.mktemp("bounded"), extra_env) as served:
        yield served


def call(gateway: Gateway, **params: str) -> dict:
    return requests.post(gateway.base_url + ENDPOINT, data=params, timeout=10).json()


def audit(gateway: Gateway, user: str) -> list[dict]:
    lines = gateway.flask("audit", "tail", "-n", "1000", "--user", user, "--json").stdout
    return [json.loads(line) for line in lines.splitlines()]


def test_a_web_login_holds_at_most_the_cap_of_api_sessions(gateway: Gateway) -> None:
    """The attack: extendsession again and again from one web login (20,000 calls made a 7 MB
    family whose listing took 640 ms). Now the family keeps at most 100 members: each new one
    past the cap ends the oldest, which is refused from then on, and the ending is audited."""
    browser = web_login(gateway, "extender")
    page = browser.get(gateway.base_url + "/", timeout=10).text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    extended = []
    for _ in range(MAX_SESSIONS_PER_FAMILY + 20):
        answer = browser.post(
            gateway.base_url + ENDPOINT, data={"operation": "extendsession"},
            headers={"X-CSRFToken": csrf}, timeout=10,
        ).json()  # fmt: skip
        assert answer["success"], answer
        extended.append(answer["result"]["sessionName"])
    store = redis.Redis.from_url(gateway.redis_url, decode_responses=True)
    family = extended[0].partition(".")[0]
    members = len([name for name in store.hkeys(f"wsgate:{{{family}}}:f") if name[:2] == "i:"])
    assert members == MAX_SESSIONS_PER_FAMILY, members
    assert call(gateway, operation="listtypes", sessionName=extended[0])["success"] is False
    assert call(gateway, operation="listtypes", sessionName=extended[-1])["success"] is True
    assert browser.get(gateway.base_url + "/", timeout=10).url.rstrip("/") == gateway.base_url
    capped = [entry for entry in audit(gateway, "extender") if entry["reason"] == "session_cap"]
    assert len(capped) == 21, len(capped)  # the web login's own member is one of the hundred


def api_login(gateway: Gateway, name: str, access_key: str) -> str:
    token = call(gateway, operation="getchallenge", username=name)["result"]["token"]
    proof = hashlib.md5((token + access_key).encode()).hexdigest()
    answer = call(gateway, operation="login", username=name, accessKey=proof)
    assert answer["success"], answer
    return answer["result"]["sessionName"]


def test_a_user_holds_at_most_the_cap_of_live_logins(gateway: Gateway) -> None:
    """The attack: log in again and again (a user's live API sessions were unbounded). Now the
    user keeps at most MAX_FAMILIES_PER_USER live logins: the oldest ends, audited as
    ``family_cap``."""
    record = json.loads(gateway.flask("users", "add", "loginner", "--json").stdout)
    sessions = [api_login(gateway, "loginner", record["accessKey"]) for _ in range(MAX_FAMILIES_PER_USER + 10)]
    store = redis.Redis.from_url(gateway.redis_url, decode_responses=True)
    user_id = record["userId"].removeprefix("19x")
    assert store.zcard(f"wsgate:families:{user_id}") == MAX_FAMILIES_PER_USER
    assert call(gateway, operation="listtypes", sessionName=sessions[0])["success"] is False
    assert call(gateway, operation="listtypes", sessionName=sessions[-1])["success"] is True
    capped = [entry for entry in audit(gateway, "loginner") if entry["reason"] == "family_cap"]
    assert len(capped) == 10, len(capped)


def challenge_keys(store: redis.Redis) -> list[str]:
    return [
        key for key in store.scan_iter(count=1000)
        if key.endswith((":c", ":decoy", ":tokens")) or ":challenges:address:" in key
    ]  # fmt: skip


def test_one_address_leaves_a_bounded_amount_without_logging_in(gateway: Gateway) -> None:
    """The attack: getchallenge, again and again, for one user and for names that are no user
    (the pending challenges were not capped: about 7 MB from one address). Now an address keeps
    at most 64 challenges over all names, a name at most 32; the README states the bytes."""
    store = redis.Redis.from_url(gateway.redis_url, decode_responses=True)
    gateway.flask("users", "add", "flooded", "--json")
    for index in range(300):
        call(gateway, operation="getchallenge", username="flooded")
        call(gateway, operation="getchallenge", username=f"nobody{index}")
    keys = challenge_keys(store)
    pending = [key for key in keys if key.endswith(":c")]
    assert len(pending) <= CHALLENGE_MAX_PER_ADDRESS, len(pending)
    tokens = [field for field in store.hkeys("wsgate:user:flooded") if field.startswith("t:")]
    assert len(tokens) <= CHALLENGE_MAX_OUTSTANDING
    held = sum(store.memory_usage(key) or 0 for key in keys) + sum(
        len(field) + 24 for field in tokens
    )
    print(f"\none address, 600 getchallenge calls: {len(keys)} keys, about {held} bytes")
    assert held < 64 * 1024, held
