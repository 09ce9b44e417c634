"""``GET /api/openapi.json``."""
from flask import jsonify

from app.api import bp
from app.api.openapi import build_document


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI document of this API."""
    return jsonify(build_document())
