"""The local stack's Lambda runtime: each function in its own processes, environment and timeout."""

from __future__ import annotations

import os
import threading
import time

import pytest

from local.lambdas import FunctionError, FunctionPool
from local.package import FunctionSpec


def spec(handler: str, timeout: float = 5.0, environment: dict[str, str] | None = None) -> FunctionSpec:
    return FunctionSpec(key=handler, name=f"items-test-{handler}", handler=f"tests.unit.fixtures.handlers.{handler}",
                        timeout=timeout, memory=256, environment=environment or {})


@pytest.fixture
def pools():
    started: list[FunctionPool] = []

    def make(*args, **kwargs) -> FunctionPool:
        pool = FunctionPool(*args, **kwargs)
        started.append(pool)
        return pool

    yield make
    for pool in started:
        pool.close()


def test_a_function_sees_its_own_environment_and_not_the_stacks(pools, monkeypatch):
    monkeypatch.setenv("STACK_ONLY_SECRET", "not for functions")
    pool = pools(spec("environment", 7.0, {"TABLE_NAME": "mine", "LOG_LEVEL": "DEBUG"}), {"AWS_REGION": "us-east-1"})
    seen = pool.invoke({})
    environment = seen["environment"]
    assert environment["TABLE_NAME"] == "mine"
    assert environment["LOG_LEVEL"] == "DEBUG"
    assert environment["AWS_REGION"] == "us-east-1"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "items-test-environment"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert "STACK_ONLY_SECRET" not in environment
    assert seen["function_name"] == "items-test-environment"
    assert 5000 < seen["remaining_ms"] <= 7000
    assert seen["pid"] != os.getpid()


def test_an_overrun_is_stopped_and_reported_as_lambda_reports_it(pools, tmp_path):
    pool = pools(spec("sleep", timeout=1.0), {})
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(FunctionError) as raised:
        pool.invoke({"seconds": 60, "pid_file": str(pid_file)})
    assert time.monotonic() - started < 10
    assert raised.value.timed_out
    assert raised.value.message.endswith("Task timed out after 1.00 seconds")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the overrunning invocation's process still runs"
    assert pool.invoke({"seconds": 0})["pid"] != pid  # a fresh execution environment serves the next one


def test_errors_are_reported_with_lambdas_type_and_message(pools):
    pool = pools(spec("fail"), {})
    with pytest.raises(FunctionError) as raised:
        pool.invoke({"message": "the key store is busy"})
    assert (raised.value.error_type, raised.value.message) == ("ValueError", "the key store is busy")
    assert not raised.value.timed_out


def test_concurrent_invocations_run_side_by_side(pools):
    pool = pools(spec("sleep"), {}, max_workers=4)
    pool.warm()
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(pool.invoke({"seconds": 1}))) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert len({r["pid"] for r in results}) == 4  # four execution environments
    assert elapsed < 3.5, f"4 invocations of 1 s took {elapsed:.1f} s: not concurrent"


def test_per_invocation_overhead_is_small(pools):
    pool = pools(spec("echo"), {})
    pool.warm()
    event = {"path": "/items", "headers": {"Authorization": "Bearer x" * 4}, "body": "x" * 2000}
    count = 300
    started = time.monotonic()
    for _ in range(count):
        assert pool.invoke(event) == event
    per_call_ms = (time.monotonic() - started) / count * 1000
    print(f"local Lambda invocation overhead: {per_call_ms:.3f} ms")
    assert per_call_ms < 5


def test_cold_concurrent_invocations_each_get_an_execution_environment(pools):
    pool = pools(spec("sleep"), {}, max_workers=4)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(pool.invoke({"seconds": 1.5}))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["pid"] for r in results}) == 4


def test_a_functions_log_lines_reach_the_stacks_reader_and_its_output(pools, capsys):
    seen: list[str] = []
    pool = pools(spec("log"), {}, on_output=seen.append)
    lines = ['{"_aws":{"Timestamp":1}}', "plain text"]
    pool.invoke({"lines": lines})
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == lines
    out = capsys.readouterr().out
    assert all(text in out for text in lines), out
