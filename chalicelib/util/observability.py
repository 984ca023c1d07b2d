"""Structured logs: one JSON line per request, and nothing secret in any line.

The line carries request id, tenant, method, route, status and latency; never the API key, a
header or a body. Powertools' Logger writes the JSON; its service name differs from the Chalice
app name, or Chalice's logger and this one would both print every line.
"""

from __future__ import annotations

import functools
import os
from typing import Any


@functools.cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service="items-service", level=os.environ.get("LOG_LEVEL", "INFO"), use_rfc3339=True)


def request_line(**fields: Any) -> None:
    logger().info("request", **fields)
