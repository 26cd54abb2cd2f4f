"""The project as an adopter gets it: built and pip-installed into a fresh venv with Flask-Login.

The checkout is copied first (so no build output lands in it), then installed with pip into a new
``python -m venv`` in tmp_path. In that venv, run from tmp_path (so the checkout is not on
sys.path): ``webservice`` and ``operations`` import, the standalone server's deployment files
``config`` and ``wsgi`` do not, and a README-style host app (Flask-Login + WSGate over a real
redis-server) logs in through Flask's test client and gets an API session from extendsession.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.e2e

#: The checkout this test file belongs to (tests/host/ is two levels below it).
CHECKOUT = Path(__file__).resolve().parents[2]
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    "test-output", "tests",
)  # fmt: skip

HOST_SCRIPT = textwrap.dedent('''\
    """A host app as the README shows one: its own users, Flask-Login, and WSGate."""
    import os
    import sys

    from flask import Flask, request
    from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user
    from webservice import ApiUser, WSGate

    class User(UserMixin):
        def __init__(self, id, username, password, access_key):
            self.id, self.username, self.password, self.access_key = id, username, password, access_key

    USERS = {"alice": User(7, "alice", "alice-password", "aLiCeAcCeSsKeY07")}

    app = Flask(__name__)
    app.config.update(SECRET_KEY="readme-example-secret", WSGATE_REDIS_URL=os.environ["REDIS_URL"])
    gate = WSGate(app)

    @gate.api_user_loader
    def load_api_user(username):
        user = USERS.get(username)
        return ApiUser(user.id, user.username, user.access_key) if user else None

    login_manager = LoginManager(app)
    login_manager.login_view = "login"

    @login_manager.user_loader
    def load_user(user_id):
        return next((u for u in USERS.values() if str(u.id) == user_id), None)

    @app.post("/login")
    def login():
        user = USERS.get(request.form["username"])
        if user is None or user.password != request.form["password"]:
            return "no", 401
        login_user(user)
        return "ok"

    @app.post("/logout")
    def logout():
        logout_user()
        return "bye"

    @app.get("/")
    @login_required
    def index():
        return "hello"

    browser = app.test_client()
    assert browser.post("/login", data={"username": "alice", "password": "alice-password"}).status_code == 200
    answer = browser.post(
        "/webservice.php", data={"operation": "extendsession"}, headers={"Origin": "http://localhost"}
    ).get_json()
    assert answer["success"] is True, answer
    assert answer["result"]["userId"] == "19x7", answer
    session_name = answer["result"]["sessionName"]
    script = app.test_client()
    listed = script.get("/webservice.php", query_string={"operation": "listtypes", "sessionName": session_name})
    assert listed.get_json()["success"] is True, listed.get_json()
    browser.post("/logout")
    listed = script.get("/webservice.php", query_string={"operation": "listtypes", "sessionName": session_name})
    assert listed.get_json()["error"]["code"] == "AUTHENTICATION_REQUIRED", listed.get_json()
    print("OK")
''')


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that would put the checkout or this venv
    on the child's path."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PIP_NO_INPUT"] = "1"
    return env


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project (built from a copy of the checkout) and flask-login
    installed by pip; its python."""
    root = tmp_path_factory.mktemp("pip-install")
    source = root / "source"
    shutil.copytree(CHECKOUT, source, ignore=COPY_IGNORE)
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], root, timeout=120)
    assert made.returncode == 0, f"python -m venv failed:\n{made.stdout}\n{made.stderr}"
    python = venv / "bin" / "python"
    installed = _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", str(source), "flask-login"],
        root, timeout=420,
    )  # fmt: skip
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    return python


@pytest.fixture(scope="module")
def redis_for_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("pip-redis")) as server:
        yield server


@pytest.mark.parametrize("module", ["config", "wsgi"])
def test_deployment_files_are_not_installed(installed_venv: Path, tmp_path: Path, module: str) -> None:
    """``config`` and ``wsgi`` belong to the checkout's standalone deployment, not to site-packages."""
    done = _run([str(installed_venv), "-c", f"import {module}"], tmp_path, timeout=60)
    assert done.returncode != 0, f"import {module} should fail in the installed venv, but worked"
    assert "ModuleNotFoundError" in done.stderr, f"import {module}: expected ModuleNotFoundError:\n{done.stderr}"


def test_packages_are_installed(installed_venv: Path, tmp_path: Path) -> None:
    """``webservice`` and ``operations`` import from the venv's site-packages (not the checkout),
    and ``webservice`` exports WSGate and ApiUser."""
    code = (
        "import webservice, operations, sys\n"
        "from webservice import WSGate, ApiUser\n"
        "print(webservice.__file__)\nprint(operations.__file__)\n"
    )
    done = _run([str(installed_venv), "-c", code], tmp_path, timeout=60)
    assert done.returncode == 0, f"imports failed in the installed venv:\n{done.stderr}"
    venv_root = installed_venv.parent.parent
    for line in done.stdout.split():
        assert Path(line).resolve().is_relative_to(venv_root), f"{line} is not inside the venv {venv_root}"


def test_readme_style_host_app_runs(installed_venv: Path, redis_for_venv: RedisServer, tmp_path: Path) -> None:
    """A Flask-Login host with WSGate, in the installed venv over a real redis-server: login,
    extendsession (same Origin), listtypes with the new session, host logout ends it; prints OK."""
    script = tmp_path / "host_example.py"
    script.write_text(HOST_SCRIPT)
    env = {**_clean_env(), "REDIS_URL": redis_for_venv.url}
    done = _run([str(installed_venv), str(script)], tmp_path, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), (
        f"the example failed (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
