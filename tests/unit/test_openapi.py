"""/openapi.json: a valid OpenAPI 3.1 document that describes every route of the app."""

from __future__ import annotations

import json
import re

import pytest
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
    from chalicelib.items.models import ItemCreate

    document = json.loads(client.http.get("/openapi.json").body)
    schema = document["components"]["schemas"]["ItemCreate"]
    assert schema == json.loads(json.dumps(ItemCreate.model_json_schema(ref_template="#/components/schemas/{model}")))
    assert schema["additionalProperties"] is False
    assert schema["properties"]["name"]["maxLength"] == 200


# --- The document says exactly what the validators do (issue 13) ----------------------------------

def served(client) -> dict:
    return json.loads(client.http.get("/openapi.json").body)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def ecma(pattern: str) -> re.Pattern[str]:
    """An ECMA-262 pattern as Python reads it: ``$`` matches only at the very end, never before a final newline."""
    assert pattern.endswith("$")
    return re.compile(pattern[:-1] + r"\Z")


def validator_for(document: dict, schema: dict):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({**schema, "components": document["components"]})


def test_patch_name_is_not_nullable_because_null_is_refused(client, tenant):
    schema = served(client)["components"]["schemas"]["ItemPatch"]["properties"]
    assert schema["name"]["type"] == "string" and "anyOf" not in schema["name"] and "default" not in schema["name"]
    assert {"type": "null"} in schema["description"]["anyOf"] and {"type": "null"} in schema["tags"]["anyOf"]
    created = json.loads(tenant.request("POST", "/items", {"name": "a"}).body)
    refused = tenant.request("PATCH", f"/items/{created['id']}", {"name": None}, content_type="application/merge-patch+json")
    assert refused.status_code == 422
    assert json.loads(refused.body)["errors"] == [{"pointer": "/name", "detail": "must be a string"}]
    kept = tenant.request("PATCH", f"/items/{created['id']}", {"tags": None}, content_type="application/merge-patch+json")
    assert kept.status_code == 200 and json.loads(kept.body)["name"] == "a"


def test_tags_and_data_defaults_are_what_an_omitted_field_becomes(client, tenant):
    schemas = served(client)["components"]["schemas"]
    for model in ("ItemCreate", "ItemReplace"):
        assert schemas[model]["properties"]["tags"]["default"] == []
        assert schemas[model]["properties"]["data"]["default"] == {}
    item = json.loads(tenant.request("POST", "/items", {"name": "defaults"}).body)
    assert (item["tags"], item["data"]) == ([], {})


FILENAME_SAMPLES = [chr(c) for c in range(0x3000)] + ["\u2028", "\ufeff", "\U0001f600"]


def test_filename_pattern_is_the_validators_rule():
    from pydantic import ValidationError

    from chalicelib.attachments.models import FILENAME_PATTERN, AttachmentCreate

    pattern = ecma(FILENAME_PATTERN)
    disagreements = []
    for char in FILENAME_SAMPLES:
        name = f"a{char}b"
        try:
            AttachmentCreate.model_validate({"filename": name, "content_type": "text/plain", "size": 1})
            accepted = True
        except ValidationError:
            accepted = False
        if accepted != bool(pattern.fullmatch(name)):
            disagreements.append(hex(ord(char)))
    assert not disagreements
    assert not pattern.fullmatch("a/b") and not pattern.fullmatch("a\\b") and not pattern.fullmatch("a\x85")


def test_idempotency_key_pattern_is_the_validators_rule(client):
    from chalicelib.problems import Problem
    from chalicelib.web import http

    parameter = next(p for p in served(client)["paths"]["/items"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    pattern = ecma(parameter["schema"]["pattern"])
    samples = [chr(c) for c in range(0x100)] + ["x" * 255, "x" * 256, "", "k\n"]
    for sample in samples:
        try:
            http.idempotency_key(type("R", (), {"headers": {"idempotency-key": sample}})())
            accepted = True
        except Problem:
            accepted = False
        assert accepted == bool(pattern.search(sample)), repr(sample)


ENTITY_TAG_SAMPLES = ['*', '"3"', 'W/"3"', '"3", "4"', '"a,b"', '"1",', ', "1"', ' "1" ', '"1",,"2"', '""',
                      '3', '"3', 'W/3', 'w/"3"', '"3" "4"', '"a"b"', '* , "1"', '"\u00e9"', '\t"1"\t', '"1";',
                      ',', ' , ,', '', '\t', ', W/"x"']


def test_entity_tag_pattern_is_the_parsers_rule(client):
    from chalicelib.problems import Problem
    from chalicelib.web import conditional

    document = served(client)
    for header in (document["paths"]["/items/{id}"]["put"]["parameters"][0],
                   document["paths"]["/items/{id}"]["get"]["parameters"][0]):
        pattern = ecma(header["schema"]["pattern"])
        for sample in ENTITY_TAG_SAMPLES:
            try:
                parsed = conditional.parse_entity_tags(sample, header["name"])
                accepted = parsed == "*" or bool(parsed)
            except Problem:
                accepted = False
            assert accepted == bool(pattern.search(sample)), (header["name"], sample)


def test_size_maxima_are_the_stages_settings(client):
    from chalicelib.config.settings import get_settings

    schemas = served(client)["components"]["schemas"]
    assert schemas["AttachmentCreate"]["properties"]["size"]["maximum"] == get_settings().max_attachment_bytes
    assert schemas["ImportCreate"]["properties"]["size"]["maximum"] == get_settings().max_import_bytes


@pytest.mark.parametrize("raw,accepted", [("1119", True), ("1119.0", True), ("1.119e3", True), ("1.5", False),
                                          ('"1119"', False), ("true", False), ("0.0", False), ("1e99999999", False)])
def test_import_size_is_a_json_schema_integer(client, tenant, raw, accepted):
    schema = served(client)["components"]["schemas"]["ImportCreate"]["properties"]["size"]
    assert schema["type"] == "integer"
    response = tenant.request("POST", "/imports", raw='{"format": "jsonl", "size": ' + raw + "}")
    assert response.status_code == (201 if accepted else 422), response.body
    if accepted:
        assert json.loads(response.body)["size"] == 1119


def test_every_response_declares_its_headers(client):
    document = served(client)
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert "X-Request-Id" in headers, (path, method, status)
            for name, header in headers.items():
                assert header["description"] and header["schema"]["type"], (path, method, status, name)
            if status in ("429", "503"):
                assert headers["Retry-After"]["schema"]["type"] == "integer" and headers["Retry-After"]["required"]
            if path.startswith("/items/{id}") and "attachments" not in path and status in ("200", "304", "412"):
                assert headers["ETag"]["required"], (path, method, status)
            if status == "201":
                assert headers["Idempotent-Replayed"]["schema"] == {"type": "string", "enum": ["true"]}
                assert headers["Location"]["required"]
    allow = document["components"]["responses"]["MethodNotAllowed"]
    assert allow["headers"]["Allow"]["required"] and "problem" in next(iter(allow["content"]))


def test_problem_types_are_the_contracts_slugs(client):
    from chalicelib.problems import PROBLEM_TYPES

    schema = served(client)["components"]["schemas"]["ProblemDocument"]["properties"]["type"]
    assert set(schema["enum"]) == {f"/problems/{slug}" for slug in PROBLEM_TYPES}


def test_authenticated_operations_describe_every_error_they_can_answer(client):
    for path, method, operation in operations(served(client)):
        statuses = set(operation["responses"])
        assert {"500", "503"} <= statuses, (path, method)
        if operation.get("security") != []:
            assert {"401", "403", "429"} <= statuses, (path, method)
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, (path, method)
        if "{" in path:
            assert "404" in statuses, (path, method)
        if any(p.get("name") == "If-Match" for p in operation.get("parameters", [])):
            assert "412" in statuses, (path, method)
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)


def test_every_operation_has_summary_description_tags_and_examples_that_validate(client):
    document = served(client)
    defined_tags = {tag["name"] for tag in document["tags"]}
    for path, method, operation in operations(document):
        assert operation["summary"] and operation["description"], (path, method)
        assert operation["tags"] and set(operation["tags"]) <= defined_tags, (path, method)
        media = [*operation.get("requestBody", {}).get("content", {}).values()]
        media += [m for r in operation["responses"].values() for m in r.get("content", {}).values()]
        assert media and all("example" in m for m in media), (path, method)
        for m in media:
            errors = list(validator_for(document, m["schema"]).iter_errors(m["example"]))
            assert not errors, (path, method, errors[:1])


def test_links_connect_create_to_its_item_and_a_page_to_the_next(client):
    document = served(client)
    by_id = {op["operationId"]: (path, op) for path, _, op in operations(document)}
    links = document["paths"]["/items"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} >= {"getItem", "replaceItem", "patchItem", "deleteItem"}
    assert document["paths"]["/items"]["get"]["responses"]["200"]["links"]["NextPage"]["parameters"] == {
        "cursor": "$response.body#/next_cursor"}
    for path, _, operation in operations(document):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target_path, target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", []) + document["paths"][target_path].get(
                    "parameters", [])}
                assert set(link["parameters"]) <= names, (path, link)


def test_patch_sends_merge_patch_first(client):
    content = served(client)["paths"]["/items/{id}"]["patch"]["requestBody"]["content"]
    assert next(iter(content)) == "application/merge-patch+json"


def test_finding_parameters_are_the_services_rules(client, tenant):
    from chalicelib.items.service import SORTS

    document = json.loads(client.http.get("/openapi.json").body)
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/items"]["get"]["parameters"]}
    assert parameters["sort"]["enum"] == list(SORTS)
    assert "default" not in parameters["sort"]  # a client filling it in would send sort=id with q (a 400)
    for name, longest in (("tag", 50), ("q", 100)):
        assert (parameters[name]["minLength"], parameters[name]["maxLength"]) == (1, longest)
        assert tenant.request("GET", f"/items?{name}={'x' * longest}").status_code == 200
        assert tenant.request("GET", f"/items?{name}={'x' * (longest + 1)}").status_code == 400
    for sort in SORTS:
        assert tenant.request("GET", f"/items?sort={sort}").status_code == 200
