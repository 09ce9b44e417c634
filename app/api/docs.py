"""``GET /api/openapi.json``."""
from flask import jsonify

from app.api import bp
from app.api.openapi import build_document, documented


@bp.get("/openapi.json")
@documented("This OpenAPI document", auth=False)
def openapi():
    """Serve the OpenAPI document of this API."""
    return jsonify(build_document())
