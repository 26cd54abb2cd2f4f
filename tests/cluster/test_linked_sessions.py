"""Linked web/API sessions on the real Redis Cluster: the integration tier's linked-logout tests
rerun unchanged, web UI included.

extendsession and every way of ending a family (web logout, API logout of a linked session,
endsession and the web page by handle, endallsessions and the web "end all"), the late
Flask-Session save that must not bring a login back, extendsession racing each kind of logout,
and the 16-thread stress run with its invariants checked over every master. The web sessions are
Flask-Session records written through the app's own cluster client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.integration.test_linked_sessions_race import (  # noqa: F401  (collected and run here)
    CHEAP_HASHER,
    Holds,
    Inspector,
    holds,
    people,
    test_a_login_from_a_page_opened_before_the_previous_login_ended_gets_a_new_session_id,
    test_a_page_view_held_across_a_logout_cannot_bring_the_login_back,
    test_a_second_login_in_the_same_browser_leaves_no_api_session_linked_to_the_replaced_one,
    test_api_logout_of_a_linked_session_ends_the_web_login_and_its_siblings,
    test_ending_a_session_by_handle_ends_its_whole_family,
    test_ending_a_standalone_session_by_handle_from_the_web_ends_only_it,
    test_extendsession_held_across_a_logout_leaves_no_live_session,
    test_extendsession_storm_racing_each_kind_of_logout,
    test_logging_out_a_standalone_login_session_touches_nothing_else,
    test_stress_linked_sessions_in_process,
    test_the_pre_logout_session_blob_written_back_cannot_bring_the_login_back,
    test_web_logout_ends_every_api_session_of_its_family,
)
from webservice.store.client import connect
from webservice.store.sessions import SessionStore

pytestmark = pytest.mark.cluster


@pytest.fixture
def linked_app(make_app) -> Flask:
    """An app over the cluster (emptied first), with request holds installed."""
    app = make_app()
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    app.extensions["test-holds"] = Holds(app)
    return app


@pytest.fixture
def inspector(linked_app: Flask) -> Iterator[Inspector]:
    """The integration tier's store inspector, reading the cluster through its own clients
    (its SCAN of every family visits every master)."""
    settings: Any = linked_app.extensions["wsgate"].settings
    spy = Inspector(linked_app, settings["REDIS_URL"])
    spy.close()
    spy.text = connect(settings)
    spy.raw = connect(settings, decode_responses=False)
    spy.store = SessionStore(
        spy.text, spy.keys,
        idle_timeout=settings["SESSION_IDLE_TIMEOUT"],
        absolute_timeout=settings["SESSION_ABSOLUTE_TIMEOUT"],
    )  # fmt: skip
    yield spy
    spy.close()
