"""When the authorizer cannot decide: the client gets 503 with Retry-After, never a 500.

A Lambda authorizer has no way to answer 503 itself: it allows, denies (403), says
"Unauthorized" (401), or fails. When the key store or the user pool is throttled or times out
beyond the client's retries, failing is the only honest answer — allowing would let unknown keys in,
denying would tell a valid client its key is wrong, and both would be cached by API Gateway for
the authorizer's TTL. A failure is not cached.

API Gateway answers a failed authorizer with its ``AUTHORIZER_FAILURE`` gateway response, which
the deploy step sets to 503 with ``Retry-After`` and a problem document (infra/gateway_responses.py,
the one definition of API Gateway's own answers). The local gateway renders the same answer from
the same definition, and so does the unit-test harness around Chalice's test client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.store.failures import from_aws_error

DETAIL = "the key store is busy; retry shortly"
POOL_DETAIL = "the user pool did not answer; retry shortly"


class AuthorizerUnavailable(RuntimeError):
    """The authorizer could not reach the key store: API Gateway's failure response (503)."""


@contextmanager
def unavailable_when_dependencies_fail() -> Iterator[None]:
    """Turn a throttled or timed-out key look-up into the authorizer failure described above."""
    try:
        yield
    except Exception as exc:
        if from_aws_error(exc) is None:
            raise
        raise AuthorizerUnavailable(DETAIL) from exc
