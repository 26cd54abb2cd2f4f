"""The attack tier: attacks on the running gateway (real gunicorn over a real redis-server), each
asserting the outcome the gateway promises. Bounded in time; run by scripts/test."""

from __future__ import annotations

from tests.e2e.conftest import Gateway, live_gateway

__all__ = ["Gateway", "live_gateway"]
