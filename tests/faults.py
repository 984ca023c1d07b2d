"""Fault injection for the AWS clients of ``chalicelib.store.aws``, through botocore's event hooks.

Faults are injected at ``before-send``, where a real request would leave for the network, so the
client's own retry policy (standard mode, bounded attempts) runs exactly as in production and
only its outcome differs. Kinds:

- ``throttle``: DynamoDB answers ``ProvisionedThroughputExceededException`` (HTTP 400, retryable);
- ``timeout``: the request never gets an answer (``ReadTimeoutError``); with ``applied=True`` the
  emulator has already applied it — the response was lost on the way back, the nasty case;
- ``condition``: DynamoDB answers ``ConditionalCheckFailedException`` (a transaction: cancelled
  on its first entry's condition), as if a concurrent writer had got there first;
- ``cancelled``: a transaction cancelled because an entry was throttled (``ThrottlingError``);
- ``denied``: ``AccessDeniedException``, a misconfigured stage (must stay a loud 500);
- ``meanwhile``: no failure; ``action`` runs first — a concurrent writer's request landing just
  before this one (a real race, decided by DynamoDB's conditions).

A fault matches an operation (``PutItem``...) and optionally a predicate on the request's JSON
body, and fires ``times`` times (or always).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError


class _Raw(BytesIO):
    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


def _error_response(url: str, code: str, message: str, **fields: Any) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **fields}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    return AWSResponse(url, 400, headers, _Raw(body))


def _s3_error_response(url: str, status: int, code: str, message: str) -> AWSResponse:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return AWSResponse(url, status, {"Content-Type": "application/xml", "x-amz-request-id": "injected"}, _Raw(body.encode()))


Predicate = Callable[[dict[str, Any]], bool]
_MARK = "x-injected-fault"


@dataclass
class Fault:
    operation: str
    kind: str
    times: int | None = None
    when: Predicate | None = None
    applied: bool = False
    action: Callable[[], None] | None = None
    delay: float = 0.0
    fired: int = 0

    def matches(self, operation: str, body: dict[str, Any]) -> bool:
        if operation != self.operation:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        return self.when is None or self.when(body)


@dataclass
class Injector:
    """Installed on one botocore client; records every call it sees, fires the faults it holds."""

    faults: list[Fault] = field(default_factory=list)
    # One entry per API call (operation, parameters), and one per attempt on the wire.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, operation: str, kind: str, *, times: int | None = None, when: Predicate | None = None,
            applied: bool = False, action: Callable[[], None] | None = None, delay: float = 0.0) -> Fault:
        fault = Fault(operation, kind, times, when, applied, action, delay)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()
        self.calls.clear()
        self.attempts.clear()

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    @staticmethod
    def _operation(request: Any, event_name: str) -> tuple[str, dict[str, Any]]:
        body = request.body
        try:
            parsed = json.loads(body) if body else {}
        except (ValueError, TypeError):
            parsed = {}  # S3 bodies are not JSON
        return event_name.rsplit(".", 1)[-1], parsed if isinstance(parsed, dict) else {}

    def before_send(self, request: Any, event_name: str, **_kwargs: Any) -> AWSResponse | None:
        operation, body = self._operation(request, event_name)
        s3 = event_name.split(".")[1] == "s3"
        self.attempts.append((operation, body))
        for fault in self.faults:
            if fault.applied or not fault.matches(operation, body):
                continue
            fault.fired += 1
            if fault.kind == "meanwhile":
                assert fault.action is not None
                fault.action()  # another client's write lands just before this request
                continue
            # botocore calls every ``before-send`` handler even after one answered; the mark tells
            # the emulator's handler (see ``injected``) that this request never reached DynamoDB.
            request.headers[_MARK] = fault.kind
            if fault.kind == "throttle" and s3:
                return _s3_error_response(request.url, 503, "SlowDown", "injected throttling")
            if fault.kind == "throttle":
                return _error_response(request.url, "ProvisionedThroughputExceededException", "injected throttling")
            if fault.kind == "condition" and operation == "TransactWriteItems":
                reasons = [{"Code": "ConditionalCheckFailed"}] + [{"Code": "None"}] * (len(body["TransactItems"]) - 1)
                return _error_response(request.url, "TransactionCanceledException", "injected race",
                                       CancellationReasons=reasons)
            if fault.kind == "condition":
                return _error_response(request.url, "ConditionalCheckFailedException", "injected race")
            if fault.kind == "cancelled":
                reasons = [{"Code": "ThrottlingError"}] + [{"Code": "None"}] * (len(body["TransactItems"]) - 1)
                return _error_response(request.url, "TransactionCanceledException", "injected throttling",
                                       CancellationReasons=reasons)
            if fault.kind == "denied":
                return _error_response(request.url, "AccessDeniedException", "injected misconfiguration")
            if fault.kind == "timeout":
                if fault.action is not None:
                    fault.action()  # e.g. move a fake clock by the time the client waited
                time.sleep(fault.delay)  # how long the client waited for an answer that never came
                raise ReadTimeoutError(endpoint_url=request.url)
            raise AssertionError(f"unknown fault kind {fault.kind}")
        return None

    def on_call(self, params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        self.calls.append((model.name, params))

    def after_send(self, request: Any, event_name: str, **_kwargs: Any) -> None:
        """Runs after the emulator applied the request: a fault here loses the response only."""
        operation, body = self._operation(request, event_name)
        for fault in self.faults:
            if fault.applied and fault.matches(operation, body):
                fault.fired += 1
                raise ReadTimeoutError(endpoint_url=request.url)


@contextmanager
def _emulator_skips_marked_requests() -> Iterator[None]:
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if request.headers.get(_MARK):
            return None
        return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


@contextmanager
def injected(*clients: Any) -> Iterator[Injector]:
    """Install one injector on ``clients`` for the duration of the block."""
    injector = Injector()
    installed = []
    for client in clients:
        service = client.meta.service_model.service_id.hyphenize()
        # Handlers on a more specific event run before moto's generic ``before-send`` one (the
        # emulator), handlers registered last on the generic event run after it.
        client.meta.events.register(f"before-send.{service}", injector.before_send, unique_id="fault-before")
        client.meta.events.register_last("before-send", injector.after_send, unique_id="fault-after")
        client.meta.events.register(f"provide-client-params.{service}", injector.on_call, unique_id="fault-calls")
        installed.append((client, service))
    try:
        with _emulator_skips_marked_requests():
            yield injector
    finally:
        for client, service in installed:
            client.meta.events.unregister(f"provide-client-params.{service}", unique_id="fault-calls")
            client.meta.events.unregister(f"before-send.{service}", unique_id="fault-before")
            client.meta.events.unregister("before-send", unique_id="fault-after")


def key_of(body: dict[str, Any]) -> tuple[str, str]:
    """``(pk, sk)`` of a single-item request (wire body or call parameters); empty when absent."""
    key = body.get("Key") or body.get("Item") or {}
    return key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")


def on_prefix(sk_prefix: str) -> Predicate:
    return lambda body: key_of(body)[1].startswith(sk_prefix)


def on_pk_prefix(pk_prefix: str) -> Predicate:
    return lambda body: key_of(body)[0].startswith(pk_prefix)
