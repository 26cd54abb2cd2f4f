"""``/.well-known/jwks.json``: the public keys that verify logout tokens (store/signing_keys.py),
the current one and those replaced recently enough that tokens they signed may still be live."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from webservice.api.gateway import current_gateway

log = logging.getLogger(__name__)
blueprint = Blueprint("wsgate_jwks", __name__)
PATH = "/.well-known/jwks.json"
#: Receivers may keep the set this long; they fetch it again when a token names a kid they lack.
MAX_AGE_SECONDS = 60


@blueprint.get(PATH)
def jwks() -> tuple[Response, int] | Response:
    try:
        keys = current_gateway().signing_keys.published()
    except RedisError as error:
        log.warning("JWKS unavailable: Redis unavailable (%s)", type(error).__name__)
        unavailable = jsonify({"error": "temporarily unavailable"})
        unavailable.headers["Retry-After"] = "1"
        unavailable.headers["Cache-Control"] = "no-store"
        return unavailable, 503
    response = jsonify({"keys": keys})
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response
