"""The OpenAPI lint gate (make openapi-lint): zero findings on the served document, and it does find."""

from __future__ import annotations

import json

from tools import openapi_lint


def test_the_served_document_has_no_findings():
    path = openapi_lint.write_document(openapi_lint.DEFAULT_OUT)
    assert openapi_lint.redocly(path) == []
    assert openapi_lint.spectral(path) == []


def test_the_gate_reports_what_each_linter_finds():
    document = openapi_lint.served_document()
    del document["info"]["license"]  # Redocly: info-license
    del document["paths"]["/items"]["get"]["description"]  # Spectral: operation-description
    path = openapi_lint.DEFAULT_OUT.with_name("defective.json")
    path.write_text(json.dumps(document))
    assert [f for f in openapi_lint.redocly(path) if "info-license" in f]
    assert [f for f in openapi_lint.spectral(path) if "operation-description" in f]
