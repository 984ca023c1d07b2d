"""AWS failures a client cannot retry away, as problems: throttling and timeouts answer 503, never 500."""

from __future__ import annotations

from typing import Any

from chalicelib.problems import Problem, unavailable
from chalicelib.store.aws import DeadlineExceeded

_THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "Throttling",
    "SlowDown",
    "ServiceUnavailable",
    "InternalServerError",
    "TransactionInProgressException",
})


_TRANSIENT_CANCELLATION_CODES = frozenset({
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
    "TransactionConflict",
})


def from_aws_error(exc: Exception) -> Problem | None:
    """Map an AWS failure the client could not retry away to 503; anything else is a bug."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        ReadTimeoutError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _THROTTLING_CODES:
            return unavailable(f"the database is busy ({code}); retry shortly")
        if code == "TransactionCanceledException":
            # Cancelled for capacity or a concurrent transaction only: nothing was written.
            reasons: Any = exc.response.get("CancellationReasons") or []
            codes = {reason.get("Code") for reason in reasons} - {"None", None}
            if codes and codes <= _TRANSIENT_CANCELLATION_CODES:
                return unavailable(f"the database is busy ({', '.join(sorted(codes))}); retry shortly")
        return None
    if isinstance(exc, DeadlineExceeded):
        return unavailable("the request ran out of time waiting for the database; retry shortly")
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, BotoConnectionError)):
        return unavailable("the database did not answer in time; retry shortly")
    return None
