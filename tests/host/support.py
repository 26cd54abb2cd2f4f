"""Helpers shared by the host tests: envelope assertions and page parsing."""

from __future__ import annotations

import re
from typing import Any

from tests.wsclient import proof

__all__ = ["proof", "success", "error_code", "meta_csrf_token", "form_csrf_token", "RESULT_KEYS"]

#: What login and extendsession answer with.
RESULT_KEYS = {"sessionName", "userId", "version", "vtigerVersion"}
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


def success(envelope: Any, what: str) -> Any:
    """The result of a successful envelope, else a failure naming ``what`` and the envelope."""
    assert isinstance(envelope, dict), f"{what}: not a JSON envelope: {envelope!r}"
    assert envelope.get("success") is True, f"{what}: expected success, got {envelope!r}"
    return envelope["result"]


def error_code(envelope: Any, what: str) -> str:
    """The error code of a failed envelope, else a failure naming ``what`` and the envelope."""
    assert isinstance(envelope, dict), f"{what}: not a JSON envelope: {envelope!r}"
    assert envelope.get("success") is False, f"{what}: expected an error, got {envelope!r}"
    return envelope["error"]["code"]


def meta_csrf_token(html: str) -> str:
    match = _META.search(html)
    assert match, f"no <meta name=csrf-token> in the page:\n{html[:500]}"
    return match.group(1)


def form_csrf_token(html: str) -> str:
    match = _FORM.search(html)
    assert match, f"no csrf_token field in the form:\n{html[:500]}"
    return match.group(1)
