"""``/.well-known/jwks.json``: the public keys that verify logout tokens (store/signing_keys.py),
the current one and those replaced recently enough that tokens they signed may still be live."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from webservice.api.gateway import current_gateway

blueprint = Blueprint("wsgate_jwks", __name__)
PATH = "/.well-known/jwks.json"
#: Receivers may keep the set this long; they fetch it again when a token names a kid they lack.
MAX_AGE_SECONDS = 60


@blueprint.get(PATH)
def jwks() -> Response:
    response = jsonify({"keys": current_gateway().signing_keys.published()})
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response
