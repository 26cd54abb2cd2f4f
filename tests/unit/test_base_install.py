"""What ``scripts/serve`` installs (the project's base dependencies, no test extras) is enough to
serve: every distribution that the gateway's own code, its deployment files and gunicorn's gevent
worker (which config/gunicorn.conf.py names) import is among the base dependencies or what they
require, transitively.

The test extras must not hide a missing one (gunicorn 27's gevent worker imports ``packaging``
without declaring it; pytest pulls it in, so the test tiers ran while ``scripts/serve`` failed)."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: gunicorn's modules on the serving path that only its config names.
GUNICORN_MODULES = ("gunicorn.workers.ggevent", "gunicorn.app.wsgiapp")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _base_closure() -> set[str]:
    """The project, its base dependencies and everything they require (extras they ask for
    included, markers evaluated for this interpreter), by normalized name."""
    from packaging.requirements import Requirement  # test-only: pytest brings it

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    names = {_name(project["name"])}
    while pending:
        requirement = pending.pop()
        name = requirement.name.lower().replace("_", "-")
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        names.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            nested = Requirement(text)
            if nested.marker is None or any(
                nested.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append(nested)
    return names


def _serving_files() -> list[Path]:
    files = [ROOT / "wsgi.py", ROOT / "config" / "gunicorn.conf.py"]
    for package in ("webservice", "operations"):
        files += sorted((ROOT / package).rglob("*.py"))
    for module in GUNICORN_MODULES:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        files.append(Path(spec.origin))
    return files


def _top_level_imports(path: Path) -> set[str]:
    """The top-level names a module imports when it is imported: not in functions (imported when
    called, as the optional Flask-Login integration is), not under ``TYPE_CHECKING``, not in the
    body of a ``try`` that catches ImportError (optional)."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
                if "ImportError" not in caught and "ModuleNotFoundError" not in caught:
                    visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(path.read_text()).body)
    return names


def test_serving_needs_nothing_beyond_the_base_dependencies():
    closure = _base_closure()
    distributions = importlib.metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in _serving_files():
        for name in _top_level_imports(path):
            if name in sys.stdlib_module_names:
                continue
            owners = {_name(owner) for owner in distributions.get(name, [])}
            if owners and not owners & closure:
                missing[name] = sorted(owners)
    assert not missing, f"imported by the serving path, not in the base dependencies: {missing}"
