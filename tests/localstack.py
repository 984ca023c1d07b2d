"""Start the real local stack (``python -m local.stack``) as a subprocess for tests.

Free ports on 127.0.0.1, known API keys via LOCAL_API_KEYS, readiness by ``GET /health``, and a
clean stop by SIGTERM, whose duration the caller may check.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    api_url: str
    ui_url: str
    keys: dict[str, str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def session(self, tenant: str = "alpha") -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.keys[tenant]}"
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns the seconds the stack took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


def start_stack(tmp_dir: Path, extra_env: dict[str, str] | None = None, timeout: float = 90.0) -> RunningStack:
    keys = {name: f"key-{name}-{secrets.token_hex(16)}" for name in ("alpha", "beta")}
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "UI_PORT": str(ui_port),
        "LOCAL_API_KEYS": ",".join(f"{tenant}:{key}" for tenant, key in keys.items()),
        "PYTHONUNBUFFERED": "1",
        "LOCAL_STATE_FILE": str(tmp_dir / f"stack-{port}.json"),
        **(extra_env or {}),
    }
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "BUCKET_NAME", "QUEUE_URL", "CURSOR_SECRETS"):
        if name not in (extra_env or {}):
            env.pop(name, None)
    log_path = tmp_dir / f"stack-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    stack = RunningStack(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}/", keys, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited early:\n{stack.log()}")
        if "ready; Ctrl-C stops" in stack.log():
            return stack
        time.sleep(0.2)
    stack.stop()
    raise RuntimeError(f"local stack not ready in {timeout} s:\n{stack.log()}")


def json_of(response: Any) -> Any:
    return response.json()
