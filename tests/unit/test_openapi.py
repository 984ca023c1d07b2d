"""/openapi.json: a valid OpenAPI 3.1 document that describes every route of the app."""

from __future__ import annotations

import json
import re

from openapi_spec_validator import validate


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_document_is_valid_openapi_3_1(client):
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.body)
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_registered_route_is_documented(client, app_module):
    document = json.loads(client.http.get("/openapi.json").body)
    documented = {(normalise(path), method.upper()) for path, ops in document["paths"].items()
                  for method in ops if method != "parameters"}
    registered = {(normalise(path), method) for path, entry in app_module.app.routes.items() for method in entry}
    missing = registered - documented
    assert not missing, f"routes missing from /openapi.json: {sorted(missing)}"
    stale = documented - registered
    assert not stale, f"documented routes the app does not serve: {sorted(stale)}"


def test_schemas_come_from_the_validating_models(client):
    from chalicelib.models import ItemCreate

    document = json.loads(client.http.get("/openapi.json").body)
    schema = document["components"]["schemas"]["ItemCreate"]
    assert schema == json.loads(json.dumps(ItemCreate.model_json_schema(ref_template="#/components/schemas/{model}")))
    assert schema["additionalProperties"] is False
    assert schema["properties"]["name"]["maxLength"] == 200
