"""The embedded AWS emulator: moto's server on a loopback port, in a thread of this process.

moto runs unmodified: nothing of it is patched. The emulator only wraps moto's WSGI application
(the one ``moto.server.ThreadedMotoServer`` serves) in three pieces of middleware of its own:

- a host check (``local/hosts.py``): only requests naming ``127.0.0.1:<port>`` or
  ``localhost:<port>`` are answered;
- DynamoDB requests are applied one at a time. Real DynamoDB applies each request atomically,
  and the service relies on that (a conditional write either sees its condition hold and writes,
  or not); moto's backend checks a condition and then writes without a lock, so two concurrent
  requests could both pass one ``version = :v`` check. The lock is taken per HTTP request, by
  its ``X-Amz-Target`` header, and held until the response body is complete: no moto code is
  involved. S3 and SQS requests stay concurrent (SQS long polls must not block anything else).
  Under the lock, ``TransactWriteItems`` is applied as its single-item writes through moto's
  own API, with an undo log (``AtomicDynamoDB`` says why);
- the user pool's e-mailed codes, which moto neither sends nor checks, are made, logged and
  checked by ``local/userpool.py`` (``Mail``).

Where moto still answers differently from DynamoDB, and what that costs, is listed in
docs/LOCAL.md. The benchmark (``bench/``) adds a speed-up of its own on moto's internals, in
its own process only (``bench/moto_speedups.py``).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from local.hosts import HostCheck, wsgi_server

_DYNAMODB_TARGET = "DynamoDB_"


class AtomicDynamoDB:
    """WSGI middleware: DynamoDB requests (``X-Amz-Target: DynamoDB_…``) run one at a time.

    ``TransactWriteItems`` is applied as its single-item writes, each sent to moto with the
    action's own condition, under the same lock (so no other request sees a transaction half
    done), and undone from the items read before it when any action's condition fails. moto's
    own ``TransactWriteItems`` deep-copies the whole table once per action as its backup (moto
    5.2.5: a 50-action transaction takes 1.8 s on a table of 1,000 items, 9 s on 5,000), and
    under the lock that would stall every DynamoDB request of the stack for as long. Composed of
    moto's own ``GetItem``, ``PutItem``, ``UpdateItem`` and ``DeleteItem`` (its HTTP API, no
    internals), it costs what its items cost. What moto should validate as a whole (more than
    100 actions, two actions on one item, a ``ConditionCheck``, anything not understood) goes to
    moto's ``TransactWriteItems`` as sent.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(_DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            if target.endswith(".TransactWriteItems"):
                from werkzeug.wsgi import get_input_stream

                body = get_input_stream(environ).read()
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
                answer = _Transaction(self, environ, body).apply()
                if answer is not None:
                    status, payload = answer
                    data = json.dumps(payload).encode()
                    start_response(status, [("Content-Type", "application/x-amz-json-1.0"),
                                            ("Content-Length", str(len(data)))])
                    return [data]
            return [self._complete(environ, start_response)]

    def _complete(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> bytes:
        """Moto's whole answer: the response is fully computed before the lock is released."""
        body = self.app(environ, start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def call(self, environ: dict[str, Any], operation: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One DynamoDB request to moto, signed as the client's own (moto takes region and account from it)."""
        from werkzeug.test import EnvironBuilder

        headers = {"X-Amz-Target": f"DynamoDB_20120810.{operation}", "Content-Type": "application/x-amz-json-1.0"}
        for key, name in (("HTTP_HOST", "Host"), ("HTTP_AUTHORIZATION", "Authorization"),
                          ("HTTP_X_AMZ_DATE", "X-Amz-Date"), ("HTTP_X_AMZ_SECURITY_TOKEN", "X-Amz-Security-Token")):
            if key in environ:
                headers[name] = environ[key]
        inner = EnvironBuilder(path="/", method="POST", headers=list(headers.items()), data=json.dumps(payload)).get_environ()
        status: list[str] = []
        data = self._complete(inner, lambda line, *_: status.append(line))
        return int(status[0].split()[0]), json.loads(data or b"{}")


_WRITES = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
_ACTION_FIELDS = ("TableName", "ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues",
                  "ReturnValuesOnConditionCheckFailure")
_CONDITION_FAILED = "ConditionalCheckFailedException"
_CANCELLED = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"


class _Transaction:
    """One ``TransactWriteItems`` as single-item writes with an undo log (see ``AtomicDynamoDB``)."""

    def __init__(self, gate: AtomicDynamoDB, environ: dict[str, Any], body: bytes) -> None:
        self.gate = gate
        self.environ = environ
        self.body = body

    def apply(self) -> tuple[str, dict[str, Any]] | None:
        """The answer, or None when moto's ``TransactWriteItems`` should answer the request as sent."""
        plan = self._plan()
        if plan is None:
            return None
        snapshots = self._read([(table, key) for _, _, table, key in plan])
        if snapshots is None:
            return None
        applied: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        reasons: list[dict[str, Any]] = []
        for (operation, request, table, key), before in zip(plan, snapshots, strict=True):
            status, answer = self.gate.call(self.environ, operation, request)
            if status == 200:
                applied.append((table, key, before))
                reasons.append({"Code": "None"})
            elif str(answer.get("__type", "")).endswith(_CONDITION_FAILED):
                reason = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                if answer.get("Item"):
                    reason["Item"] = answer["Item"]
                reasons.append(reason)
            else:  # a validation error or a missing table fails the whole request, as in moto
                return self._undo(applied) or _error(status, answer)
        if any(reason["Code"] != "None" for reason in reasons):
            undone = self._undo(applied)
            if undone is not None:
                return undone
            codes = ", ".join(reason["Code"] for reason in reasons)
            message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
            return "400 Bad Request", {"__type": _CANCELLED, "CancellationReasons": reasons, "Message": message}
        return "200 OK", {"ConsumedCapacity": [], "ItemCollectionMetrics": {}}

    def _read(self, keys: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any] | None] | None:
        """Each touched item as it is now (None: absent), in one ``BatchGetItem``; None if moto refuses it."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pending: dict[str, Any] = {}
        for table, key in keys:
            pending.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        schemas = {table: list(key) for table, key in keys}
        for _ in range(10):
            if not pending:
                break
            status, answer = self.gate.call(self.environ, "BatchGetItem", {"RequestItems": pending})
            if status != 200:
                return None
            for table, items in answer.get("Responses", {}).items():
                for item in items:
                    key = {name: item[name] for name in schemas[table]}
                    found[(table, json.dumps(key, sort_keys=True))] = item
            pending = answer.get("UnprocessedKeys") or {}
        if pending:
            return None
        return [found.get((table, json.dumps(key, sort_keys=True))) for table, key in keys]

    def _plan(self) -> list[tuple[str, dict[str, Any], str, dict[str, Any]]] | None:
        try:
            actions = json.loads(self.body)["TransactItems"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(actions, list) or not 0 < len(actions) <= 100:
            return None
        schemas: dict[str, list[str]] = {}
        plan, seen = [], set()
        for action in actions:
            if not isinstance(action, dict) or len(action) != 1:
                return None
            (kind, op), = action.items()
            if kind not in _WRITES or not isinstance(op, dict) or not isinstance(op.get("TableName"), str):
                return None
            table = op["TableName"]
            if table not in schemas:
                status, described = self.gate.call(self.environ, "DescribeTable", {"TableName": table})
                if status != 200:
                    return None
                schemas[table] = [k["AttributeName"] for k in described["Table"]["KeySchema"]]
            source = op.get("Item") if kind == "Put" else op.get("Key")
            if not isinstance(source, dict) or any(name not in source for name in schemas[table]):
                return None
            key = {name: source[name] for name in schemas[table]}
            identity = (table, json.dumps(key, sort_keys=True))
            if identity in seen:
                return None
            seen.add(identity)
            request = {name: op[name] for name in _ACTION_FIELDS if name in op}
            if kind == "Put":
                request["Item"] = op["Item"]
            else:
                request["Key"] = op["Key"]
            if kind == "Update":
                if "UpdateExpression" not in op:
                    return None
                request["UpdateExpression"] = op["UpdateExpression"]
            plan.append((_WRITES[kind], request, table, key))
        return plan

    def _undo(self, applied: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> tuple[str, dict[str, Any]] | None:
        """Put back each touched item as it was; None when all went back (else a 500 answer)."""
        for table, key, before in reversed(applied):
            if before is None:
                status, answer = self.gate.call(self.environ, "DeleteItem", {"TableName": table, "Key": key})
            else:
                status, answer = self.gate.call(self.environ, "PutItem", {"TableName": table, "Item": before})
            if status != 200:
                return "500 Internal Server Error", {"__type": "InternalServerError",
                                                     "message": f"emulator: transaction not undone: {answer}"}
        return None


def _error(status: int, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{status} {HTTPStatus(status).phrase}", answer


class Emulator:
    def __init__(self, host: str, port: int, log: Callable[[str], None] = print) -> None:
        self.host = host
        self.port = port
        self.log = log
        self.mail: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        from local.userpool import Mail

        # Only requests for the emulator's own names (local/hosts.py); presigned URLs name it so.
        self.mail = Mail(DomainDispatcherApplication(create_backend_app), self.log)
        app = HostCheck(AtomicDynamoDB(self.mail), self.port)
        self._server = wsgi_server(self.host, self.port, app, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aws-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
