"""The local stack's operations view: it reads the lines the functions write, as CloudWatch would."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from chalicelib.util import metrics
from local import frontend
from local.operations import Operations, percentile

NOW = 1_800_000_000.0


def line(family, values, **dimensions) -> str:
    return json.dumps(metrics.emf_document(family, dimensions, values, int(NOW * 1000), "ItemsService/local"))


def test_requests_latency_and_problems_come_from_the_emf_lines():
    view = Operations(clock=lambda: NOW)
    get = {"Route": "/items/{item_id}", "Method": "GET"}
    assert view.feed(line(metrics.API, {"Requests": [1, 1, 1], "Latency": [10, 20, 30], "ClientErrors": [0, 0, 1],
                                        "ServerErrors": [0, 0, 0]}, **get))
    assert view.feed(line(metrics.PROBLEMS, {"Problems": [1]}, ProblemType="not-found", **get))
    assert not view.feed('{"level":"INFO","message":"request"}')
    assert not view.feed('{"_aws": not json')
    snapshot = view.snapshot()
    assert snapshot["requests_per_second"][-1] == {"at": int(NOW), "count": 3.0}
    assert sum(p["count"] for p in snapshot["requests_per_second"]) == 3
    (route,) = snapshot["latency_by_route"]
    assert route == {"route": "GET /items/{item_id}", "count": 3, "p50": 20.0, "p95": 30.0, "p99": 30.0}
    assert snapshot["problems_by_type"] == {"not-found": 1.0}
    assert snapshot["emf_lines"] == 2


def test_requests_older_than_the_window_leave_the_plot():
    clock = [NOW]
    view = Operations(clock=lambda: clock[0])
    view.feed(line(metrics.API, {"Requests": [1], "Latency": [5], "ClientErrors": [0], "ServerErrors": [0]},
                   Route="/items", Method="GET"))
    clock[0] = NOW + 500
    assert sum(p["count"] for p in view.snapshot()["requests_per_second"]) == 0


def test_a_cleanup_runs_lines_make_one_run():
    view = Operations(clock=lambda: NOW)
    view.feed(line(metrics.CLEANUP, {"CleanupRuns": [1], "CleanupDuration": [12.5], "CleanupLag": [40]}))
    view.feed(line(metrics.CLEANUP_DELETED, {"CleanupDeleted": [3]}, Kind="item"))
    view.feed(line(metrics.CLEANUP_DELETED, {"CleanupDeleted": [1]}, Kind="attachment"))
    (run,) = view.snapshot()["cleanup_runs"]
    assert run == {"at": int(NOW * 1000), "deleted": {"item": 3.0, "attachment": 1.0}, "duration_ms": 12.5, "lag_seconds": 40.0}


def test_queue_samples_and_imports_are_kept():
    view = Operations(clock=lambda: NOW)
    view.sample_queues({"work": 3, "dead-letter": 0})
    view.set_imports([{"id": "i1", "rows_total": 10, "rows_imported": 4, "rows_failed": 1}])
    snapshot = view.snapshot()
    assert snapshot["queue_depths"] == [{"at": int(NOW * 1000), "work": 3, "dead-letter": 0}]
    assert snapshot["imports_in_flight"][0]["id"] == "i1"


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 99) == 7.0


@pytest.fixture
def served():
    server = frontend.bind("127.0.0.1", 0)
    port = server.server_address[1]
    server.RequestHandlerClass.func.port = port  # the host check's own port (bound on 0 here)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, port
    server.shutdown()
    server.server_close()


def test_the_front_ends_server_serves_the_data_only_when_the_stack_gives_it(served):
    server, port = served
    url = f"http://127.0.0.1:{port}/operations.json"
    frontend.configure(server, api_url="http://127.0.0.1:1", api_key="k")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 - loopback
    assert missing.value.code == 404  # as on a deployed stage: no operations data
    view = Operations(clock=lambda: NOW)
    frontend.configure(server, api_url="http://127.0.0.1:1", api_key="k", operations=view.snapshot)
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        assert response.headers["Cache-Control"] == "no-store"
        assert json.loads(response.read())["emf_lines"] == 0
    request = urllib.request.Request(url, headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    assert refused.value.code == 403
