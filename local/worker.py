"""One Lambda execution environment: ``python -m local.worker HANDLER RESULT_FD NAME MEMORY``.

Imports the handler once (the cold start), then serves invocations one at a time, as a Lambda
container does: a request is one JSON line on stdin (``event``, ``request_id``,
``remaining_ms``); its outcome is one JSON line on the file descriptor ``RESULT_FD`` — the
handler's return value, or the error Lambda would report. stdout and stderr are the function's
log, as in CloudWatch Logs. The pool in ``local/lambdas.py`` enforces the timeout by killing the
process, as Lambda ends an execution environment whose invocation overran.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, TextIO

REGION = "us-east-1"
ACCOUNT = "123456789012"


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, memory_mb: int, request_id: str, remaining_ms: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def die_with_parent(interval: float = 0.5) -> None:
    """End this process soon after the one that started it ends, whatever ended it (even a
    SIGKILL, which gives the stack no chance to stop its workers)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _reply(results: TextIO, outcome: dict[str, Any]) -> None:
    try:
        line = json.dumps(outcome)
    except (TypeError, ValueError) as exc:
        line = json.dumps({"ok": False, "errorType": "Runtime.MarshalError",
                           "errorMessage": f"Unable to marshal response: {exc}"})
    results.write(line + "\n")
    results.flush()


def _error(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "errorType": type(exc).__name__, "errorMessage": str(exc)}


def main(argv: list[str]) -> int:
    handler_string, result_fd, function_name, memory = argv[0], int(argv[1]), argv[2], int(argv[3])
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the stack stops us
    results = os.fdopen(result_fd, "w", encoding="utf-8")
    module_name, _, attribute = handler_string.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        traceback.print_exc()
        _reply(results, {"ready": False, "errorType": "Runtime.ImportModuleError",
                         "errorMessage": f"Unable to import module '{module_name}': {exc}"})
        return 1
    _reply(results, {"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(function_name, memory, request["request_id"], request["remaining_ms"])
        try:
            outcome: dict[str, Any] = {"ok": True, "result": handler(request["event"], context)}
        except Exception as exc:
            print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc()
            outcome = _error(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        _reply(results, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
