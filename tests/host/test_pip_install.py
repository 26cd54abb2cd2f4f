"""The project as an adopter gets it: built and pip-installed into a fresh venv with Flask-Login.

The checkout is copied first (so no build output lands in it), then installed with pip into a new
``python -m venv`` in tmp_path. In that venv, run from tmp_path (so the checkout is not on
sys.path): ``webservice`` and ``operations`` import, the standalone server's deployment files
``config`` and ``wsgi`` do not, and the README's host-app example (Flask-Login + WSGate over a
real redis-server), copied from the README as it stands, logs in through Flask's test client and
gets an API session from extendsession.
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

#: The README's host-app example is the block after this marker.
EXAMPLE_MARKER = "<!-- host-app-example:"

#: What a new user does with the example: log in in a browser (Flask's test client), let the
#: page's script get an API session (extendsession with the page's CSRF token), use it from
#: another client, log out, and see the API session refused.
DRIVER = textwrap.dedent('''\
    import re

    from app import app

    browser = app.test_client()
    assert browser.get("/").status_code == 302, "the page should need a login"
    answer = browser.post("/login", data={"username": "alice", "password": "alice-password"})
    assert answer.status_code == 302 and answer.location.endswith("/"), answer.status_code
    page = browser.get("/").get_data(as_text=True)
    assert "Hello alice" in page, page
    token = re.search(r'name="wsgate-csrf" content="([^"]+)"', page).group(1)
    answer = browser.post(
        "/webservice.php", data={"operation": "extendsession"}, headers={"X-CSRFToken": token}
    ).get_json()
    assert answer["success"] is True and answer["result"]["userId"] == "19x7", answer
    session_name = answer["result"]["sessionName"]
    script = app.test_client()
    listed = script.get("/webservice.php", query_string={"operation": "listtypes", "sessionName": session_name})
    assert listed.get_json()["success"] is True, listed.get_json()
    assert browser.post("/logout").status_code == 302
    listed = script.get("/webservice.php", query_string={"operation": "listtypes", "sessionName": session_name})
    assert listed.get_json()["error"]["code"] == "AUTHENTICATION_REQUIRED", listed.get_json()
    print("OK")
''')


def readme_example() -> str:
    """The README's host-app example, as it stands."""
    readme = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    after = readme.split(EXAMPLE_MARKER, 1)[1]
    block = after.split("```python\n", 1)[1].split("\n```", 1)[0]
    return block + "\n"


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


def test_the_readme_example_runs(installed_venv: Path, redis_for_venv: RedisServer, tmp_path: Path) -> None:
    """The README's Flask-Login example, copied as it stands into app.py, in the installed venv
    over a real redis-server: login, extendsession with the page's token, listtypes with the new
    session, host logout ends it; prints OK."""
    (tmp_path / "app.py").write_text(readme_example())
    (tmp_path / "drive.py").write_text(DRIVER)
    env = {**_clean_env(), "WSGATE_REDIS_URL": redis_for_venv.url}
    done = _run([str(installed_venv), "drive.py"], tmp_path, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), (
        f"the example failed (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
