"""Real gunicorn (2 workers) with ``WSGATE_REDIS_CLUSTER=1`` and one seed node in
``WSGATE_REDIS_URL``, over HTTP: the e2e tier's walks rerun unchanged, the operators' CLI on the
cluster, and the web UI with a linked logout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.conftest import LocalCluster
from tests.e2e.conftest import Gateway
from tests.e2e.test_http_walk import (  # noqa: F401  (collected and run here)
    test_a_logged_out_session_is_refused_by_every_worker,
    test_walk_with_the_quirks_of_real_clients,
)
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from tests.integration.test_linked_sessions_race import (
    PASSWORD,
    Api,
    Browser,
    HttpTransport,
    code_of,
)
from webservice.store.tokens import hash_secret

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


@pytest.fixture(scope="module")
def live_gateway(redis_cluster: LocalCluster, tmp_path_factory) -> Iterator[Gateway]:
    """gunicorn over the cluster, configured only by environment variables, as in production."""
    client = redis_cluster.client()
    client.flushall()
    client.close()
    log_path = tmp_path_factory.mktemp("gunicorn-cluster") / "gunicorn.log"
    process, base_url, env = start_gunicorn(
        redis_cluster.url,
        log_path,
        # The web sessions in Redis (Flask-Session), so that they too live on the cluster.
        extra_env={"WSGATE_REDIS_CLUSTER": "1", "WSGATE_WEB_SESSIONS": "redis"},
    )
    try:
        yield Gateway(base_url, redis_cluster.url, env, log_path)
    finally:
        stop_gunicorn(process)


def test_web_login_extendsession_and_linked_logout_over_http(
    live_gateway: Gateway, redis_cluster: LocalCluster
):
    live_gateway.flask("users", "add", "webber", "--password", PASSWORD)
    browser = Browser(HttpTransport(live_gateway.base_url))
    sid = browser.log_in("webber")
    assert browser.page_status("/") == "ok"
    extended = browser.extend("token")
    assert extended["success"], extended
    linked = extended["result"]["sessionName"]
    api = Api(HttpTransport(live_gateway.base_url))
    assert api.works(linked)

    # The browser's Flask-Session record is on the cluster (one master holds it).
    web_key = "wsgate:web:" + hash_secret(sid)
    masters = redis_cluster.node_clients(decode_responses=True)

    def holders() -> int:
        return sum(web_key in set(m.scan_iter(match="wsgate:web:*", count=1000)) for m in masters)

    assert holders() == 1

    browser.log_out()
    assert not api.works(linked), "the linked API session died with the web login"
    assert holders() == 0
    assert browser.page_status("/") == "login"
    assert code_of(browser.extend("origin")) in ("AUTHENTICATION_FAILURE", "AUTHENTICATION_REQUIRED")
    for master in masters:
        master.close()
