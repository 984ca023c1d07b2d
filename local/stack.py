"""The local stack: the whole service on one machine, no cloud account.

Starts, all on 127.0.0.1:
- an AWS emulator (moto's server) holding the resources built from infra/template.yaml;
- the API on ``PORT`` (default 8000): a gateway (``local/gateway.py``) serving the API definition
  that ``chalice package`` generates for the local stage (``local/package.py``), with the
  gateway responses the deploy step defines, in front of the packaged functions, each run in
  its own worker processes with its own environment and timeout (``local/lambdas.py``);
- the static front end on ``UI_PORT`` (default 8080);
- the event dispatcher (``local/dispatcher.py``): storage events, work-queue messages and the
  cleanup schedule, wired as the package says (the schedule every ``LOCAL_CLEANUP_INTERVAL``
  seconds when set).

Every server answers only to its own host names (``local/hosts.py``). Ready when
``GET /health`` answers 200; stops cleanly on SIGINT or SIGTERM, and leaves no process behind.
Run with ``make run`` (or ``python -m local.stack`` inside the project's virtualenv).
What differs from AWS, and why: docs/LOCAL.md.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.emulator import Emulator
    from local.lambdas import FunctionPool
    from local.package import Package

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_FILE = ROOT / ".local" / "stack.json"


def state_file() -> Path:
    """Where a running stack says where it is (read by ``tools.apikeys --local``)."""
    return Path(os.environ.get("LOCAL_STATE_FILE") or DEFAULT_STATE_FILE)
HOST = "127.0.0.1"
STAGE = "local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def parse_keys(raw: str) -> list[tuple[str, str]]:
    """``LOCAL_API_KEYS``: ``tenant:key,tenant:key``."""
    pairs = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, key = entry.partition(":")
        if not sep or not tenant or not key:
            raise SystemExit(f"LOCAL_API_KEYS entry {entry!r} is not tenant:key")
        pairs.append((tenant, key))
    return pairs


class PortBusy(SystemExit):
    """A port the stack must listen on is taken: one line naming the variable to change."""

    def __init__(self, variable: str, port: int) -> None:
        super().__init__(
            f"[stack] {variable}={port} is already in use: set {variable} to a free port "
            f"(e.g. make run {variable}={port + 1})"
        )


def listen(variable: str, port: int, bind: Callable[[], Any]) -> Any:
    """``bind()``: a server bound to ``HOST:port`` (not serving yet); a busy port is one line."""
    try:
        return bind()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortBusy(variable, port) from None
        raise SystemExit(f"[stack] cannot listen on {HOST}:{port} ({variable}): {exc.strerror}") from None


class LocalStack:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.port = _port(environ, "PORT", 8000)
        self.ui_port = _port(environ, "UI_PORT", 8080)
        self.emulator_port = _port(environ, "EMULATOR_PORT", 0) or _free_port()
        self.endpoint = f"http://{HOST}:{self.emulator_port}"
        self.api_url = f"http://{HOST}:{self.port}"
        self.ui_url = f"http://{HOST}:{self.ui_port}/"
        self.ui_origin = f"http://{HOST}:{self.ui_port}"
        self.emulator: Emulator | None = None
        self.api_server: Any = None
        self.gateway: Any = None
        self.ui_server: Any = None
        self.dispatcher: Any = None
        self.pools: dict[str, FunctionPool] = {}
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.state_file = state_file()
        self.keys: list[tuple[str, str]] = []
        self.stage_env: dict[str, str] = {}
        self.runtime_env: dict[str, str] = {}
        self.package: Package | None = None
        self.demo_user: dict[str, str] = {}
        from local.operations import Operations

        self.operations = Operations()
        self.sampler: Any = None
        self.queues: dict[str, str] = {}
        self.outputs: dict[str, str] = {}

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        self._bind()
        self._start_emulator()
        outputs = self._create_resources()
        self.outputs = outputs
        self.stage_env = self._stage_environment(outputs)
        self._cursor_secrets()
        self._allow_browser_uploads(outputs["BucketName"], self.stage_env["CORS_ALLOW_ORIGIN"])
        self._build_package(outputs)
        self._start_functions()
        self._create_keys()
        self._create_demo_user(outputs)
        self._start_dispatcher()
        self._start_sampler(outputs)
        self._serve_api()
        self._serve_ui()
        self._wait_ready()
        self._write_state(outputs)
        self._announce()

    def _bind(self) -> None:
        """Claim both ports first: a busy one stops the start before anything else ran."""
        from local import frontend
        from local.hosts import wsgi_server

        self.api_server = listen("PORT", self.port, lambda: wsgi_server(HOST, self.port, self._api))
        self.ui_server = listen("UI_PORT", self.ui_port, lambda: frontend.bind(HOST, self.ui_port))

    def _api(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.gateway(environ, start_response)

    def _start_emulator(self) -> None:
        import logging

        from local.emulator import Emulator

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # The emulator's CloudFormation creates no alarms (it says so once per alarm): locally the
        # Operations page of the front end shows the same metrics instead (docs/LOCAL.md).
        logging.getLogger("moto.cloudformation.parsing").setLevel(logging.ERROR)

        # A port picked here (EMULATOR_PORT unset) was free a moment ago; another process may take
        # it before the emulator binds it, so a few more are tried. A port the user named is theirs.
        tries = 1 if _port(self.environ, "EMULATOR_PORT", 0) else 5
        for attempt in range(tries):
            self.emulator = Emulator(HOST, self.emulator_port, _log)
            try:
                self.emulator.start()
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                if attempt == tries - 1:
                    raise PortBusy("EMULATOR_PORT", self.emulator_port) from None
                self.emulator_port = _free_port()
                self.endpoint = f"http://{HOST}:{self.emulator_port}"
        self.runtime_env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        os.environ.update(self.runtime_env)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        _log(f"AWS emulator on {self.endpoint}")

    def _create_resources(self) -> dict[str, str]:
        import boto3

        from infra import stack

        outputs = stack.deploy(boto3.client("cloudformation"), STAGE)
        if "UserPoolId" not in outputs:  # the emulator's CloudFormation skips Cognito resources
            from local import userpool

            outputs.update(userpool.ensure(boto3.client("cognito-idp"), STAGE))
        names = ("TableName", "BucketName", "FrontendBucketName", "WorkQueueName", "DeadLetterQueueName")
        _log(f"resources from infra/template.yaml: {', '.join(outputs[name] for name in names)}")
        return outputs

    def _cursor_secrets(self) -> None:
        """As a deployed stage: a SecureString parameter the functions read (here in the emulator)."""
        import boto3

        boto3.client("ssm").put_parameter(
            Name=self.stage_env["CURSOR_SECRETS_PARAMETER"],
            Value=self.environ.get("CURSOR_SECRETS") or secrets.token_urlsafe(32),
            Type="SecureString",
            Overwrite=True,
        )

    def _allow_browser_uploads(self, bucket: str, origin: str) -> None:
        """The page uploads straight to the bucket (presigned POST) from the front end's origin.

        The emulator lets any origin in while a bucket has no CORS rules, and only the listed
        origins once it has some; naming the front end's origin (the API's ``CORS_ALLOW_ORIGIN``)
        keeps local behaving like a stage whose bucket admits exactly its own front end.
        """
        import boto3

        boto3.client("s3").put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [origin],
                        "AllowedMethods": ["POST"],
                        "AllowedHeaders": ["*"],
                        "MaxAgeSeconds": 600,
                    }
                ]
            },
        )

    def _stage_environment(self, outputs: dict[str, str]) -> dict[str, str]:
        """What ``make deploy`` writes into a stage's configuration, for the local stage.

        The queue's URL holds the emulator's port, which changes from run to run: it reaches the
        functions with the runtime's variables instead, so the package stays cached.
        """
        from infra import policy, stack

        env = {name: value for name, value in stack.app_environment(outputs).items() if name != "QUEUE_URL"}
        env.update(
            {
                "CURSOR_SECRETS_PARAMETER": policy.cursor_secrets_parameter(STAGE),
                "CORS_ALLOW_ORIGIN": self.environ.get("CORS_ALLOW_ORIGIN") or self.ui_origin,
                # The schedule's rate in the package; LOCAL_CLEANUP_INTERVAL (seconds) overrides it.
                "CLEANUP_RATE_MINUTES": "1",
            }
        )
        for name in LOCAL_SETTINGS:
            if self.environ.get(name):
                env[name] = self.environ[name]
        return env

    def _build_package(self, outputs: dict[str, str]) -> None:
        from local import package

        try:
            built = package.build(self.stage_env, {"QUEUE_URL": outputs["WorkQueueUrl"]}, package_cache())
        except package.PackageError as exc:
            raise SystemExit(f"[stack] {exc}") from None
        self.package = built.package
        self.runtime_env["QUEUE_URL"] = outputs["WorkQueueUrl"]
        how = "cached" if built.cached else "built"
        _log(f"package    chalice package --stage {STAGE}: {how} in {built.seconds:.2f} s ({built.directory.name})")

    def _start_functions(self) -> None:
        from local.lambdas import FunctionPool

        assert self.package is not None
        concurrency = _port(self.environ, "LOCAL_CONCURRENCY", 4) or 4
        for key, spec in self.package.functions.items():
            self.pools[key] = FunctionPool(spec, self.runtime_env, max_workers=concurrency, on_output=self.operations.feed)
        # The API's and the authorizer's cold starts happen now, side by side, not on the first request.
        first = [self.package.api_function, *self._authorizer_functions()]
        warming = [threading.Thread(target=self.pools[key].warm) for key in first if key in self.pools]
        for thread in warming:
            thread.start()
        for thread in warming:
            thread.join()
        _log(f"functions  {', '.join(f'{s.name} ({s.timeout:g} s)' for s in self.package.functions.values())}")

    def _authorizer_functions(self) -> list[str]:
        from local.package import function_of

        assert self.package is not None
        definitions = (self.package.swagger.get("securityDefinitions") or {}).values()
        return [
            function_of(d["x-amazon-apigateway-authorizer"]["authorizerUri"])
            for d in definitions
            if "x-amazon-apigateway-authorizer" in d
        ]

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self.pools[function].invoke(event)

    def _create_keys(self) -> None:
        from chalicelib.auth import apikeys

        requested = parse_keys(self.environ.get("LOCAL_API_KEYS", ""))
        table = self.stage_env["TABLE_NAME"]
        if not requested:
            _, key = apikeys.create(table, "local", label="generated by make run")
            self.keys = [("local", key)]
            return
        for tenant, key in requested:
            try:
                apikeys.create(table, tenant, key=key, label="LOCAL_API_KEYS")
            except apikeys.InvalidKeyRequest as exc:
                raise SystemExit(f"LOCAL_API_KEYS: {exc}") from exc
        self.keys = requested

    def _create_demo_user(self, outputs: dict[str, str]) -> None:
        """A person of the demo key's tenant, to sign in to the front end with (docs/AUTH.md)."""
        import boto3

        from tools import users

        email = self.environ.get("LOCAL_DEMO_EMAIL") or "demo@example.com"
        # The pool's policy wants 12 characters with upper case, lower case and a digit.
        password = self.environ.get("LOCAL_DEMO_PASSWORD") or f"Demo-{secrets.token_urlsafe(9)}a1"
        tenant = self.keys[0][0]
        users.invite(boto3.client("cognito-idp"), outputs["UserPoolId"], email, tenant, password)
        self.demo_user = {"email": email, "password": password, "tenant": tenant}

    def _start_dispatcher(self) -> None:
        import boto3

        from local.dispatcher import Dispatcher

        assert self.package is not None
        interval = self.environ.get("LOCAL_CLEANUP_INTERVAL")
        self.dispatcher = Dispatcher(
            self.package,
            self.pools,
            boto3.client("sqs"),
            boto3.client("s3"),
            cleanup_interval=float(interval) if interval else None,
            duplicate_deliveries=self.environ.get("LOCAL_DUPLICATE_DELIVERY", "") in ("1", "true"),
            event_dead_letter_arn=self.outputs["EventDeadLetterQueueArn"],
        )
        self.dispatcher.start()
        schedules = ", ".join(f"{f.name} every {seconds:g} s" for f, seconds, _ in self.dispatcher.schedules)
        _log(f"events     storage, work queue, {schedules}")

    def _start_sampler(self, outputs: dict[str, str]) -> None:
        """Queue depths and imports in flight for the Operations page, every second."""
        import boto3

        from local import operations

        sqs = boto3.client("sqs")
        self.queues = {"work": outputs["WorkQueueUrl"], "dead-letter": outputs["DeadLetterQueueUrl"],
                       "events dead-letter": outputs["EventDeadLetterQueueUrl"]}
        table = self.stage_env["TABLE_NAME"]

        def sample() -> None:
            self.operations.sample_queues(operations.queue_depths(sqs, self.queues))
            self.operations.set_imports(operations.imports_in_flight(table))

        self.sampler = operations.Sampler(self.operations, sample)
        self.sampler.start()

    def _serve_api(self) -> None:
        from local.gateway import Gateway

        assert self.package is not None
        self.gateway = Gateway(self.package, self.invoke, self.port, self.stage_env["CORS_ALLOW_ORIGIN"])
        guarded: dict[str, tuple[int, int]] = {}
        for resource in self.gateway.definition.resources:
            for operation in resource.operations.values():
                if operation.authorizer is not None:
                    count, ttl = guarded.get(operation.authorizer.name, (0, operation.authorizer.ttl_seconds))
                    guarded[operation.authorizer.name] = (count + 1, ttl)
        for name, (count, ttl) in guarded.items():
            _log(f"authorizer {name} on {count} methods, results cached {ttl} s")
        self._serve("api", self.api_server)

    def _serve_ui(self) -> None:
        from local import frontend

        user_pool = {"region": self.runtime_env["AWS_REGION"], "clientId": self.stage_env.get("USER_POOL_CLIENT_ID", ""),
                     "endpoint": self.endpoint}
        frontend.configure(self.ui_server, api_url=self.api_url, api_key=self.keys[0][1] if self.keys else "",
                           user_pool=user_pool, operations=self._operations_snapshot)
        self._serve("frontend", self.ui_server)

    def _operations_snapshot(self) -> dict[str, Any]:
        """The Operations page's data, with the codes the user pool would have e-mailed (local/userpool.py)."""
        mail = self.emulator.mail if self.emulator is not None else None
        return {**self.operations.snapshot(), "codes": mail.recent_codes() if mail is not None else []}

    def _serve(self, name: str, server: Any) -> None:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as response:  # noqa: S310 - fixed http URL
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"the API did not answer on {self.api_url}/health within {timeout:.0f} s")

    def _write_state(self, outputs: dict[str, str]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {"endpoint_url": self.endpoint, "api_url": self.api_url, "ui_url": self.ui_url, **outputs,
                 "demo_user": self.demo_user}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def _announce(self) -> None:
        lines = [
            f"API        {self.api_url}   (try: curl {self.api_url}/health)",
            f"front end  {self.ui_url}",
            f"emulator   {self.endpoint}",
        ]
        if self.environ.get("LOCAL_API_KEYS"):
            lines.append("API keys   from LOCAL_API_KEYS: " + ", ".join(tenant for tenant, _ in self.keys))
        else:
            lines.append(f"API key    {self.keys[0][1]}   (tenant 'local')")
        if self.demo_user:
            lines.append(f"demo user  {self.demo_user['email']} / {self.demo_user['password']}   "
                         f"(tenant '{self.demo_user['tenant']}'; sign in on the front end)")
        lines.append("ready; Ctrl-C stops")
        for line in lines:
            _log(line)

    # -- stop -------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        started = self.emulator is not None
        if started:
            _log("stopping")
        if self.dispatcher is not None:
            self.dispatcher.stopping.set()  # its loops wind down while the rest stops
        if self.sampler is not None:
            self.sampler.stop()
        for server in (self.api_server, self.ui_server):
            if server is not None:
                if any(t.is_alive() for t in self.threads):
                    server.shutdown()
                server.server_close()
        closing = [threading.Thread(target=pool.close) for pool in self.pools.values()]
        for thread in closing:
            thread.start()
        if self.dispatcher is not None:
            self.dispatcher.stop()  # its loops end while the workers do
        for thread in closing:
            thread.join()
        if self.emulator is not None:
            self.emulator.stop()
        if started:
            self.state_file.unlink(missing_ok=True)
            _log("stopped")


# Stage settings a user may set for the local stack (API.md "Local stack").
LOCAL_SETTINGS = (
    "UPLOAD_WINDOW_SECONDS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_IMPORT_BYTES",
    "IMPORT_DEADLINE_SECONDS",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "LOG_LEVEL",
)


def package_cache() -> Path:
    return Path(os.environ.get("LOCAL_PACKAGE_CACHE") or ROOT / ".local" / "package")


def _port(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name) or str(default)
    if not raw.isascii() or not raw.isdigit() or int(raw) > 65535:
        raise SystemExit(f"[stack] {name} must be a number from 1 to 65535, got {raw!r}")
    return int(raw)


def main() -> int:
    stack = LocalStack(dict(os.environ))
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop_requested.is_set():
            stop_requested.set()
            raise Stopping(signum)  # interrupts a start still under way, too

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        stack.start()
        stop_requested.wait()
    except Stopping:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return 0


class Stopping(BaseException):
    """A stop signal arrived (raised in the main thread by the signal handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)


if __name__ == "__main__":
    sys.exit(main())
