"""The packaged functions, each run as Lambda runs it: its own processes, environment and timeout.

Each function gets a pool of worker processes (``local/worker.py``), one per concurrent
invocation, like Lambda's execution environments: a worker is started when every existing one
is busy (up to ``max_workers``), imports the handler once, and then serves invocation after
invocation. Its environment is the function's own variables from the package plus what Lambda's
runtime adds (region, credentials; locally also ``AWS_ENDPOINT_URL``, the emulator).

An invocation that outlives the function's timeout is stopped: its worker is killed (Lambda
ends the execution environment) and the caller gets ``Task timed out after N.NN seconds``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from local.package import FunctionSpec

OutputReader = Callable[[str], object]  # called with each line a function writes

ROOT = Path(__file__).resolve().parent.parent
INIT_TIMEOUT_SECONDS = 60.0  # a cold start on a busy machine; Lambda allows 10 s per init
# What a Lambda execution environment's process inherits besides the function's variables.
INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONUNBUFFERED", "COVERAGE_PROCESS_START")


class FunctionError(Exception):
    """An invocation failed as Lambda reports it: ``errorType`` and ``errorMessage``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message

    @property
    def timed_out(self) -> bool:
        return self.error_type == "Sandbox.Timedout"


class _Worker:
    def __init__(self, spec: FunctionSpec, environment: Mapping[str, str], on_output: OutputReader | None = None) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local.worker", spec.handler, str(write_fd), spec.name, str(spec.memory)],
                cwd=ROOT,
                env=dict(environment),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if on_output else None,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        if on_output is not None:
            threading.Thread(target=self._relay_output, args=(on_output,), name=f"{spec.name}-log", daemon=True).start()
        self.results: IO[bytes] = os.fdopen(read_fd, "rb")
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.results, selectors.EVENT_READ)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """The next outcome line; None when none came in time."""
        if not self.selector.select(max(0.0, timeout)):
            return None
        line = self.results.readline()
        if not line:
            code = self.process.wait()
            raise FunctionError("Runtime.ExitError", f"Runtime exited with error: exit status {code}")
        outcome: dict[str, Any] = json.loads(line)
        return outcome

    def _relay_output(self, on_output: OutputReader) -> None:
        """The function's log, as CloudWatch Logs would get it: each line to the stack's own output
        and to ``on_output`` (the operations view reads the EMF lines among them)."""
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            with contextlib.suppress(Exception):  # a reader's bug must not stop the function's log
                on_output(line.rstrip("\n"))

    def wait_ready(self, timeout: float) -> None:
        outcome = self._read(timeout)
        if outcome is None:
            self.kill()
            raise FunctionError("Runtime.InitError", f"the handler was not ready within {timeout:.0f} s")
        if not outcome.get("ready"):
            self.kill()
            raise FunctionError(str(outcome.get("errorType")), str(outcome.get("errorMessage")))

    def call(self, event: Any, request_id: str, timeout: float) -> dict[str, Any] | None:
        assert self.process.stdin is not None
        request = {"event": event, "request_id": request_id, "remaining_ms": int(timeout * 1000)}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        return self._read(timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.close()

    def close(self, timeout: float = 2.0) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the worker's loop ends on end of input
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.selector.close()
        self.results.close()


class FunctionPool:
    """One packaged function: invoke it with an event, get its result or a ``FunctionError``."""

    def __init__(self, spec: FunctionSpec, runtime_environment: Mapping[str, str], max_workers: int = 4,
                 on_output: OutputReader | None = None) -> None:
        self.spec = spec
        self.on_output = on_output
        self.max_workers = max_workers
        self.environment = {
            **{name: os.environ[name] for name in INHERITED if name in os.environ},
            **runtime_environment,
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        }
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._starting = 0
        self._condition = threading.Condition()
        self._closed = False
        self.invocations = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def warm(self) -> None:
        """Start one worker now, so the first invocation does not pay the cold start."""
        with self._condition:
            if self._all or self._starting:
                return
            self._starting += 1
        worker = self._start_worker()
        with self._condition:
            self._idle.append(worker)
            self._condition.notify()

    def _start_worker(self) -> _Worker:
        """A new worker, counted in ``_starting`` until it is in ``_all`` (never in both)."""
        try:
            worker = _Worker(self.spec, self.environment, self.on_output)
        except BaseException:
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._starting -= 1
            self._all.append(worker)
        try:
            worker.wait_ready(INIT_TIMEOUT_SECONDS)
        except BaseException:
            worker.kill()
            with self._condition:
                self._condition.notify()
            raise
        return worker

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._closed:
                    raise FunctionError("Runtime.Stopped", "the local stack is stopping")
                if self._idle:
                    return self._idle.pop()
                if len(self._live()) + self._starting < self.max_workers:
                    self._starting += 1
                    break
                self._condition.wait()
        return self._start_worker()

    def _live(self) -> list[_Worker]:
        self._all = [w for w in self._all if w.alive()]
        return self._all

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            if worker.alive() and not self._closed:
                self._idle.append(worker)
            self._condition.notify()

    def invoke(self, event: Any) -> Any:
        """The handler's return value; ``FunctionError`` when it raised, crashed or timed out."""
        worker = self._acquire()
        request_id = str(uuid.uuid4())
        self.invocations += 1
        try:
            outcome = worker.call(event, request_id, self.spec.timeout)
            if outcome is None:
                worker.kill()  # Lambda ends the execution environment of an invocation that overran
        except FunctionError:
            worker.kill()
            raise
        except (OSError, ValueError) as exc:  # the worker died, or is being stopped
            worker.kill()
            raise FunctionError("Runtime.ExitError", f"Runtime exited: {exc}") from exc
        finally:
            self._release(worker)
        if outcome is None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            raise FunctionError("Sandbox.Timedout", f"{stamp} {request_id} Task timed out after {self.spec.timeout:.2f} seconds")
        if not outcome.get("ok"):
            raise FunctionError(str(outcome.get("errorType")), str(outcome.get("errorMessage")))
        return outcome.get("result")

    def __call__(self, event: Any, _context: Any = None) -> Any:
        """A pool is a handler too (``local.dispatcher.Function``): errors raise."""
        return self.invoke(event)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            workers = list(self._all)
            self._idle.clear()
            self._condition.notify_all()
        threads = [threading.Thread(target=w.close, args=(1.0,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
