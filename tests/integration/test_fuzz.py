"""Schemathesis against the real local stack, driven by the service's own ``/openapi.json``.

Valid and invalid requests generated from the document (bounded, fixed seed, so a run is
repeatable and fits in ``make test``) must never get a 5xx, and every response must be one the
document declares: status code, content type and body schema. A failure means the code or the
document is wrong; both are the contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 2 * settings.default.max_examples  # the profile's (tests/conftest.py): 60, thorough 200
SEED = 20261124
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

RESULTS: Counter[str] = Counter()


def _document() -> dict[str, Any]:
    from chalicelib.web import openapi

    return openapi.document()


# Collected from the document the app serves (the first test proves the stack serves exactly this).
fuzzed = schemathesis.openapi.from_dict(_document())
fuzzed.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])



@pytest.fixture(scope="module")
def stack(local_stack) -> Iterator[Any]:
    yield local_stack
    print(f"\nfuzz: {RESULTS['examples']} requests, {RESULTS['5xx']} 5xx, by status {dict(sorted(RESULTS.items()))}")


def test_the_stack_serves_the_fuzzed_document(stack):
    import requests

    assert requests.get(f"{stack.api_url}/openapi.json", timeout=10).json() == _document()


@fuzzed.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@seed(SEED)
def test_api_matches_its_description(case, stack):
    response = case.call(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.keys['alpha']}"},
                         timeout=10)
    RESULTS["examples"] += 1
    RESULTS[str(response.status_code)] += 1
    if response.status_code >= 500:
        RESULTS["5xx"] += 1
    case.validate_response(response, checks=CHECKS)
