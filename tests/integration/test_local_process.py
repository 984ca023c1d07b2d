"""``make run`` as users start and stop it: busy ports, supervisors, signals; nothing left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.localstack import ROOT, free_port

STOP_SECONDS = 5


def session_processes(session: int) -> list[str]:
    """The processes still alive in a session (zombies included: they are not reaped yet)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == session:
            found.append(f"{entry.name} {fields[0]} {command}")
    return found


def stack_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PORT": str(free_port()), "UI_PORT": str(free_port()), "PYTHONUNBUFFERED": "1",
           "LOCAL_STATE_FILE": str(tmp_path / "stack.json"), **extra}
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "BUCKET_NAME", "QUEUE_URL", "CURSOR_SECRETS", "MAKEFLAGS", "MFLAGS"):
        env.pop(name, None)
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while "ready; Ctrl-C stops" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.2)


def assert_nothing_left(session: int, env: dict[str, str], log: Path) -> None:
    deadline = time.monotonic() + STOP_SECONDS
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert left == [], f"left running after the stop:\n{left}\n{log.read_text(errors='replace')[-3000:]}"
        for name in ("PORT", "UI_PORT"):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections in TIME_WAIT are fine
                sock.bind(("127.0.0.1", int(env[name])))  # nobody listens there any more
    finally:
        for line in left:
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize("variable", ["PORT", "UI_PORT"])
def test_a_busy_port_is_one_line_naming_the_variable(tmp_path, variable):
    env = stack_environment(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env[variable] = str(port)
        done = subprocess.run([sys.executable, "-m", "local.stack"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, lines
    assert f"{variable}={port} is already in use" in lines[0]
    assert f"set {variable} to a free port" in lines[0]


def test_make_run_under_timeout_leaves_nothing_behind(tmp_path):
    """``timeout`` running out (its SIGALRM) stops the whole stack, workers and all."""
    env = stack_environment(tmp_path)
    log = tmp_path / "run.log"
    supervisor = start(["timeout", "300", "make", "run"], env, log)
    try:
        wait_ready(supervisor, log)
        assert requests.get(f"http://127.0.0.1:{env['PORT']}/health", timeout=10).status_code == 200
        assert len(session_processes(supervisor.pid)) >= 3  # timeout, make, the stack (and its workers)
        supervisor.send_signal(signal.SIGALRM)  # what timeout's own timer sends it when the time is up
        assert supervisor.wait(timeout=STOP_SECONDS + 5) == 124  # timeout's "timed out"
        assert_nothing_left(supervisor.pid, env, log)
        assert "[stack] stopped" in log.read_text()
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)


def test_sigterm_to_make_alone_stops_everything(tmp_path):
    env = stack_environment(tmp_path)
    log = tmp_path / "run.log"
    make = start(["make", "run"], env, log)
    try:
        wait_ready(make, log)
        started = time.monotonic()
        make.send_signal(signal.SIGTERM)  # to make only, not its process group
        make.wait(timeout=STOP_SECONDS + 5)
        assert_nothing_left(make.pid, env, log)
        assert time.monotonic() - started < STOP_SECONDS
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)


def test_a_stop_while_starting_leaves_nothing_behind(tmp_path):
    env = stack_environment(tmp_path)
    log = tmp_path / "run.log"
    supervisor = start(["timeout", "300", "make", "run"], env, log)
    try:
        deadline = time.monotonic() + 60
        while "[stack] AWS emulator on" not in log.read_text(errors="replace"):  # still starting
            assert time.monotonic() < deadline and supervisor.poll() is None, log.read_text(errors="replace")
            time.sleep(0.05)
        supervisor.send_signal(signal.SIGALRM)
        supervisor.wait(timeout=STOP_SECONDS + 5)
        assert_nothing_left(supervisor.pid, env, log)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
