"""When the authorizer cannot decide: the client gets 503 with Retry-After, never a 500.

A Lambda authorizer has no way to answer 503 itself: it allows, denies (403), says
"Unauthorized" (401), or fails. When the key store is throttled or times out beyond the
client's retries, failing is the only honest answer — allowing would let unknown keys in,
denying would tell a valid client its key is wrong, and both would be cached by API Gateway for
the authorizer's TTL. A failure is not cached.

- In a deployed stage, API Gateway answers a failed authorizer with its
  ``AUTHORIZER_FAILURE`` / ``AUTHORIZER_CONFIGURATION_ERROR`` gateway responses; the deploy step
  sets both to ``UNAVAILABLE_GATEWAY_RESPONSE`` below (503, ``Retry-After``, a problem document).
- Under ``chalice local`` and Chalice's test client, the API Gateway emulation turns exceptions
  of its own ``LocalGatewayException`` type into responses; the same failure is raised as such
  an exception there, with the same status, headers and body. A Lambda package holds only
  ``chalice/app.py`` and ``chalice/__init__.py`` of Chalice, so ``chalice.local`` cannot be
  imported there: that is how the two cases are told apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.problems import PROBLEM_CONTENT_TYPE, from_aws_error

RETRY_AFTER_SECONDS = 1
DETAIL = "the key store is busy; retry shortly"

# For API Gateway's gateway responses (PutGatewayResponse), so a deployed stage answers exactly
# as the local emulation does. ``$context.requestId`` is API Gateway's request id.
UNAVAILABLE_GATEWAY_RESPONSE: dict[str, Any] = {
    "statusCode": "503",
    "responseParameters": {
        "gatewayresponse.header.Retry-After": f"'{RETRY_AFTER_SECONDS}'",
        "gatewayresponse.header.Content-Type": f"'{PROBLEM_CONTENT_TYPE}'",
        "gatewayresponse.header.Cache-Control": "'no-store'",
        "gatewayresponse.header.X-Content-Type-Options": "'nosniff'",
    },
    "responseTemplates": {
        "application/json": json.dumps(
            {
                "type": "/problems/service-unavailable",
                "title": "Service temporarily unavailable",
                "status": 503,
                "detail": DETAIL,
                "request_id": "$context.requestId",
            }
        )
    },
}


class AuthorizerUnavailable(RuntimeError):
    """The authorizer could not reach the key store: API Gateway's failure response (503)."""


def _local_error() -> Exception | None:
    try:
        from chalice.local import LocalGatewayException
    except ImportError:
        return None

    class LocalAuthorizerUnavailable(LocalGatewayException):
        CODE = 503

    body = json.loads(UNAVAILABLE_GATEWAY_RESPONSE["responseTemplates"]["application/json"])
    body["request_id"] = str(uuid.uuid4())
    headers = {
        name.rsplit(".", 1)[-1]: value.strip("'")
        for name, value in UNAVAILABLE_GATEWAY_RESPONSE["responseParameters"].items()
    }
    headers["x-amzn-ErrorType"] = "AuthorizerFailureException"
    return LocalAuthorizerUnavailable(headers, json.dumps(body).encode())


@contextmanager
def unavailable_when_dependencies_fail() -> Iterator[None]:
    """Turn a throttled or timed-out key look-up into the authorizer failure described above."""
    try:
        yield
    except Exception as exc:
        if from_aws_error(exc) is None:
            raise
        local = _local_error()
        if local is not None:
            raise local from exc
        raise AuthorizerUnavailable(DETAIL) from exc
