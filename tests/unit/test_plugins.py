"""Operation plugins from installed distributions (entry-point group ``wsgate.operations``).

``tests/example_plugin`` is a real distribution. These tests install it with pip into a temporary
directory (never into the project's environment), put that directory on ``sys.path`` and show that
a new app discovers its ``echo`` operation and dispatches to it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import envelope, error, login, result
from webservice.api.registry import Operation, RegistryError

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "example_plugin"
PLUGIN_MODULES = ("wsgate_example_plugin", "wsgate_clash_plugin")


def pip_install(source: Path, target: Path) -> None:
    """Installs the distribution in ``source`` into ``target`` with pip, offline, built by its
    own backend (setuptools, from the test extra) in this environment."""
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(target),
    ]  # fmt: skip
    done = subprocess.run(
        [*command, str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"


def _install_copy(source: Path, workdir: Path) -> Path:
    """Copies ``source`` (so no build output lands in the repository) and installs it."""
    copy = workdir / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info"))
    target = workdir / "site"
    pip_install(copy, target)
    return target


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """A directory holding the installed example plugin (built once for this module)."""
    return _install_copy(EXAMPLE_PLUGIN, tmp_path_factory.mktemp("example-plugin"))


@pytest.fixture(scope="module")
def clash_site(tmp_path_factory) -> Path:
    """A directory holding a plugin whose operation is called ``LOGIN``, like a built-in."""
    root = tmp_path_factory.mktemp("clash-plugin")
    source = root / "source"
    (source / "src" / "wsgate_clash_plugin").mkdir(parents=True)
    (source / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "wsgate-clash-plugin"
        version = "0.1.0"

        [project.entry-points."wsgate.operations"]
        login = "wsgate_clash_plugin:login"

        [tool.setuptools]
        package-dir = { "" = "src" }
        packages = ["wsgate_clash_plugin"]
        """))
    (source / "src" / "wsgate_clash_plugin" / "__init__.py").write_text(textwrap.dedent('''\
        from webservice.api.registry import operation


        @operation("LOGIN", needs_session=False)
        def login(context, params):
            """Tries to take over login."""
            return {"sessionName": "stolen"}
        '''))
    return _install_copy(source, root)


def _forget_plugin_modules() -> None:
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


@pytest.fixture
def on_path(monkeypatch):
    """Puts an installed site directory on sys.path for one test only."""
    _forget_plugin_modules()

    def prepend(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()

    yield prepend
    monkeypatch.undo()
    _forget_plugin_modules()


# --- The example distribution -------------------------------------------------------------------


def test_example_plugin_is_not_installed_in_the_project_environment(make_app):
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("wsgate-example-plugin")
    assert gateway_of(make_app()).operations.get("echo") is None


def test_installed_distribution_declares_the_entry_point(example_site, on_path):
    on_path(example_site)
    dist = importlib.metadata.distribution("wsgate-example-plugin")
    assert dist.version == "0.1.0"
    points = [ep for ep in dist.entry_points if ep.group == "wsgate.operations"]
    assert [(ep.name, ep.value) for ep in points] == [("echo", "wsgate_example_plugin:echo")]
    assert Path(dist.locate_file("wsgate_example_plugin")).parent == example_site


def test_plugin_is_discovered(example_site, on_path, make_app):
    on_path(example_site)
    registry = gateway_of(make_app()).operations
    echo = registry.get("echo")
    assert isinstance(echo, Operation)
    assert echo.name == "echo"
    assert echo.needs_session is True
    assert echo.describe_params() == [("text", "string", True)]
    assert "wsgate-example-plugin" in registry.source("echo")
    # The built-ins are all still there.
    assert {"getchallenge", "login", "logout", "listtypes"} <= {op.name for op in registry}


def test_plugin_is_dispatched(example_site, on_path, make_app):
    on_path(example_site)
    app = make_app()
    alice = gateway_of(app).users.add("alice")
    client = app.test_client()
    session_id = login(client, "alice", alice.access_key)

    body = envelope(client.post("/webservice.php", data={"operation": "echo", "sessionName": session_id, "text": "héllo"}))
    assert result(body) == {"text": "héllo", "user": "alice"}

    body = envelope(client.get("/webservice.php", query_string={"operation": "ECHO", "text": "x"},
                               headers={"corebos-authorization": session_id}))
    assert result(body) == {"text": "x", "user": "alice"}

    body = envelope(client.post("/webservice.php", data={"operation": "echo", "text": "x"}))
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")

    body = envelope(client.post("/webservice.php", data={"operation": "echo", "sessionName": session_id}))
    assert "text" in error(body, "MANDATORY_FIELDS_MISSING")


def test_plugin_appears_in_operations_list(example_site, on_path, make_app):
    on_path(example_site)
    outcome = make_app().test_cli_runner().invoke(args=["operations", "list"])
    assert outcome.exit_code == 0, outcome.output
    line = next(line for line in outcome.output.splitlines() if line.startswith("echo "))
    assert "text:string" in line and "no session" not in line
    assert "wsgate-example-plugin" in outcome.output


def test_plugin_clashing_with_a_builtin_stops_the_app(clash_site, on_path, make_app):
    on_path(clash_site)
    with pytest.raises(RegistryError, match="login"):
        make_app()


def test_two_plugins_side_by_side_still_clash(example_site, clash_site, on_path, make_app):
    on_path(example_site)
    on_path(clash_site)
    with pytest.raises(RegistryError):
        make_app()
