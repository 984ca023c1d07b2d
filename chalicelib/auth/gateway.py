"""When the authorizer cannot decide: the client gets 503 with Retry-After, never a 500.

A Lambda authorizer has no way to answer 503 itself: it allows, denies (403), says
"Unauthorized" (401), or fails. When the key store is throttled or times out beyond the
client's retries, failing is the only honest answer — allowing would let unknown keys in,
denying would tell a valid client its key is wrong, and both would be cached by API Gateway for
the authorizer's TTL. A failure is not cached.

- In a deployed stage, API Gateway answers a failed authorizer with its
  ``AUTHORIZER_FAILURE`` / ``AUTHORIZER_CONFIGURATION_ERROR`` gateway responses; the deploy step
  sets both to 503 with ``Retry-After`` and a problem document (infra/gateway_responses.py, the
  one definition of API Gateway's own answers).
- Under ``chalice local`` and Chalice's test client, the API Gateway emulation turns exceptions
  of its own ``LocalGatewayException`` type into responses; the same failure is raised as such
  an exception there, with the same status, headers and body. A Lambda package holds only
  ``chalice/app.py`` and ``chalice/__init__.py`` of Chalice, so ``chalice.local`` cannot be
  imported there: that is how the two cases are told apart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.store.failures import from_aws_error

DETAIL = "the key store is busy; retry shortly"

class AuthorizerUnavailable(RuntimeError):
    """The authorizer could not reach the key store: API Gateway's failure response (503)."""


def _local_error() -> Exception | None:
    try:
        from chalice.local import LocalGatewayException
    except ImportError:
        return None

    class LocalAuthorizerUnavailable(LocalGatewayException):
        CODE = 503

    # Only reached where chalice.local exists, i.e. never in a Lambda package, which holds no infra/.
    from infra import gateway_responses

    origin = os.environ.get("CORS_ALLOW_ORIGIN", "").strip() or "*"
    _, headers, body = gateway_responses.render("AUTHORIZER_FAILURE", str(uuid.uuid4()), origin)
    headers["x-amzn-ErrorType"] = "AuthorizerFailureException"
    return LocalAuthorizerUnavailable(headers, body)


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
