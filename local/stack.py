"""The local stack: the whole service on one machine, no cloud account.

Starts, all on 127.0.0.1:
- an AWS emulator (moto's threaded server) holding the resources built from infra/template.yaml;
- ``chalice local`` serving the API on ``PORT`` (default 8000);
- the static front end on ``UI_PORT`` (default 8080);
- the event dispatcher (``local/dispatcher.py``): storage events, work-queue messages and the
  cleanup schedule (every ``LOCAL_CLEANUP_INTERVAL`` seconds, default 60), delivered to the app's
  own handlers with Lambda's semantics.

Ready when ``GET /health`` answers 200; stops cleanly on SIGINT or SIGTERM.
Run with ``make run`` (or ``python -m local.stack`` inside the project's virtualenv).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.emulator import Emulator

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


class LocalStack:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.port = int(environ.get("PORT") or 8000)
        self.ui_port = int(environ.get("UI_PORT") or 8080)
        self.emulator_port = int(environ.get("EMULATOR_PORT") or 0) or _free_port()
        self.endpoint = f"http://{HOST}:{self.emulator_port}"
        self.api_url = f"http://{HOST}:{self.port}"
        self.ui_url = f"http://{HOST}:{self.ui_port}/"
        self.ui_origin = f"http://{HOST}:{self.ui_port}"
        self.emulator: Emulator | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.ui_server: Any = None
        self.dispatcher: Any = None
        self.stopping = threading.Event()
        self.state_file = state_file()
        self.keys: list[tuple[str, str]] = []
        self.app_env: dict[str, str] = {}

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        self._start_emulator()
        outputs = self._create_resources()
        self.app_env = self._app_environment(outputs)
        os.environ.update(self.app_env)
        self._allow_browser_uploads(outputs["BucketName"], self.app_env["CORS_ALLOW_ORIGIN"])
        self._create_keys()
        self._start_dispatcher()
        self._start_api()
        self._start_ui()
        self._wait_ready()
        self._write_state(outputs)
        self._announce()

    def _start_emulator(self) -> None:
        import logging

        from local.emulator import Emulator

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self.emulator = Emulator(HOST, self.emulator_port)
        self.emulator.start()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        _log(f"AWS emulator on {self.endpoint}")

    def _create_resources(self) -> dict[str, str]:
        import boto3

        from infra import stack

        outputs = stack.deploy(boto3.client("cloudformation"), STAGE)
        names = ("TableName", "BucketName", "FrontendBucketName", "WorkQueueName", "DeadLetterQueueName")
        _log(f"resources from infra/template.yaml: {', '.join(outputs[name] for name in names)}")
        return outputs

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

    def _app_environment(self, outputs: dict[str, str]) -> dict[str, str]:
        env = {
            "STAGE": STAGE,
            "TABLE_NAME": outputs["TableName"],
            "BUCKET_NAME": outputs["BucketName"],
            "QUEUE_URL": outputs["WorkQueueUrl"],
            "CURSOR_SECRETS": self.environ.get("CURSOR_SECRETS") or secrets.token_urlsafe(32),
            "CORS_ALLOW_ORIGIN": self.environ.get("CORS_ALLOW_ORIGIN") or self.ui_origin,
        }
        for name in (
            "UPLOAD_WINDOW_SECONDS",
            "MAX_ATTACHMENT_BYTES",
            "MAX_IMPORT_BYTES",
            "RATE_LIMIT_RPS",
            "RATE_LIMIT_BURST",
            "LOG_LEVEL",
        ):
            if self.environ.get(name):
                env[name] = self.environ[name]
        return env

    def _create_keys(self) -> None:
        from chalicelib import apikeys

        requested = parse_keys(self.environ.get("LOCAL_API_KEYS", ""))
        table = self.app_env["TABLE_NAME"]
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

    def _start_dispatcher(self) -> None:
        import importlib

        import boto3

        from local.dispatcher import Dispatcher

        self.dispatcher = Dispatcher(
            importlib.import_module("app"),
            boto3.client("sqs"),
            boto3.client("s3"),
            cleanup_interval=float(self.environ.get("LOCAL_CLEANUP_INTERVAL") or 60),
            report_batch_item_failures=self.environ.get("LOCAL_REPORT_BATCH_ITEM_FAILURES", "") in ("1", "true"),
            duplicate_deliveries=self.environ.get("LOCAL_DUPLICATE_DELIVERY", "") in ("1", "true"),
        )
        self.dispatcher.start()
        _log(f"events     storage, work queue, cleanup every {self.dispatcher.cleanup_interval:g} s")

    def _start_api(self) -> None:
        env = {**os.environ, **self.app_env, "PYTHONUNBUFFERED": "1"}
        self.api = subprocess.Popen(
            [
                sys.executable, "-m", "local.chalice_local", "local",
                "--host", HOST, "--port", str(self.port), "--stage", STAGE, "--no-autoreload",
            ],
            cwd=ROOT,
            env=env,
        )

    def _start_ui(self) -> None:
        from local import frontend

        self.ui_server = frontend.serve(
            HOST, self.ui_port, api_url=self.api_url, api_key=self.keys[0][1] if self.keys else ""
        )

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api is not None and self.api.poll() is not None:
                raise SystemExit(f"chalice local exited with status {self.api.returncode}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1) as response:  # noqa: S310 - fixed http URL
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"the API did not answer on {self.api_url}/health within {timeout:.0f} s")

    def _write_state(self, outputs: dict[str, str]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {"endpoint_url": self.endpoint, "api_url": self.api_url, "ui_url": self.ui_url, **outputs}
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
        lines.append("ready; Ctrl-C stops")
        for line in lines:
            _log(line)

    # -- stop -------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        _log("stopping")
        if self.dispatcher is not None:
            self.dispatcher.stopping.set()  # its loops wind down while the rest stops
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.api.kill()
                self.api.wait()
        if self.ui_server is not None:
            self.ui_server.shutdown()
            self.ui_server.server_close()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.emulator is not None:
            self.emulator.stop()
        self.state_file.unlink(missing_ok=True)
        _log("stopped")


def main() -> int:
    stack = LocalStack(dict(os.environ))
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        while not stop_requested.wait(0.2):
            if stack.api is not None and stack.api.poll() is not None:
                _log(f"chalice local exited with status {stack.api.returncode}")
                return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
