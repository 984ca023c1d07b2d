"""The peer comparison of ``make bench``: this service against what a user would copy instead.

Subjects, each in a fresh process per sample (``bench/peer_child.py``):

- ``floor``: bare boto3, one ``GetItem`` (and one ``PutItem`` for the POST column);
- ``ours``: the service's Lambda entry points: the API function (``GET /items/{id}``,
  ``POST /items``) and the authorizer function, with an API key (``auth``) and with a person's
  access token from the emulator's user pool (``auth_token``: the pool's key set and ``GetUser``
  over HTTP, once each, as on a cold start in AWS);
- the peers under ``bench/peers/``: the seed-style Chalice sample, Powertools' REST resolver with
  Logger/Metrics/Tracer/pydantic, and FastAPI with Mangum.

Interleaved: each round runs every (subject, action) once, in an order rotated by one each round,
so drift of the machine (another job, thermal state) spreads over all subjects alike. Ratios are
the median over rounds of the ratio *within* a round (paired samples), times are medians. Warm
figures are compared between subjects as each process's ratio to its own raw call.

The first client request of ours is the authorizer function cold plus the API function cold: two
Lambda functions in series, so the two cold samples of one round are added. The peers have no
authorizer: their first request is their cold ``GET``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("seed", "powertools", "fastapi")
SUBJECTS = ("ours", *PEERS)
COLD = [("floor", "get"), ("floor", "post"), ("ours", "get"), ("ours", "post"), ("ours", "auth"), ("ours", "auth_token"),
        ("seed", "get"),
        ("powertools", "get"), ("powertools", "post"), ("fastapi", "get"), ("fastapi", "post")]
WARM = [(subject, "warm") for subject in SUBJECTS]
TENANT = "bench-peers"
CHILD_TIMEOUT_SECONDS = 120

# Issue 16's targets, as medians of the interleaved rounds: (subject, key) -> (op, bound).
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("ours", "cold_get_vs_floor"): ("<=", 1.0),
    ("ours", "cold_post_vs_floor"): ("<=", 1.15),
    ("ours", "cold_auth_vs_floor"): ("<=", 0.9),
    ("ours", "cold_auth_token_vs_floor"): ("<=", 0.9),
    ("ours", "first_request_vs_floor"): ("<=", 1.9),
    ("ours", "warm_get_vs_raw"): ("<=", 1.02),
    ("seed", "cold_get_vs_ours"): (">=", 1.0),
    ("seed", "first_request_vs_ours"): (">=", 1.0),
    ("seed", "warm_get_vs_ours"): (">=", 1.0),
}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform(terse=True)}


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _run(job: tuple[str, str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "bench/peer_child.py", *job], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS)
    if done.returncode:
        raise RuntimeError(f"peer_child {' '.join(job)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(rounds: int, warm_requests: int, item_id: str, api_key: str, person: dict[str, str], *,
            warmup: bool = True) -> dict[str, Any]:
    """``person``: ``BENCH_TOKEN`` (a person's access token of the peers' tenant) and the pool's variables.

    ``warmup``: one unmeasured run of each (subject, action) before the measured rounds.
    """
    env = {**os.environ, **person, "BENCH_TENANT": TENANT, "BENCH_ITEM": item_id, "BENCH_KEY": api_key,
           "BENCH_WARM": str(warm_requests),
           # Every subject logs as it would in production (the service's request line, Powertools' lines).
           "LOG_LEVEL": "INFO", "POWERTOOLS_LOG_LEVEL": "INFO",
           # No X-Ray daemon here: Powertools' Tracer is imported and wraps the handler, but sends nothing.
           "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "Items"}
    # Bytecode caches are written by the unmeasured first runs and read by the measured ones, whatever
    # the caller's environment says (a Lambda package is another matter: see docs/PERFORMANCE.md).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    jobs = COLD + WARM
    for job in jobs if warmup else ():  # one unmeasured run each: bytecode caches written, files in the page cache
        _run(job, env)
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {job: [] for job in jobs}
    started = time.monotonic()
    for index in range(rounds):
        shift = index % len(jobs)
        for job in jobs[shift:] + jobs[:shift]:
            samples[job].append(_run(job, env))
    return summarize(samples, rounds, warm_requests, time.monotonic() - started)


def summarize(samples: dict[tuple[str, str], list[dict[str, Any]]], rounds: int, warm_requests: int,
              seconds: float) -> dict[str, Any]:
    def of(subject: str, action: str, field: str = "ms") -> list[float]:
        return [sample[field] for sample in samples[(subject, action)]]

    def paired(values: list[float], base: list[float]) -> float:
        return round(_median([v / b for v, b in zip(values, base, strict=True)]), 3)

    def series(subject: str, field: str) -> dict[str, list[float]]:
        """Per-round cold samples of one subject (wall ``ms`` or ``cpu_ms``)."""
        found = {f"cold_{action}": of(subject, action, field) for action in ("get", "post", "auth", "auth_token")
                 if (subject, action) in samples}
        # Two functions in series for ours; the peers have no authorizer in front.
        found["first_request"] = [a + b for a, b in zip(found["cold_auth"], found["cold_get"], strict=True)] \
            if "cold_auth" in found else found["cold_get"]
        return found

    floor_get, floor_get_cpu = of("floor", "get"), of("floor", "get", "cpu_ms")
    ours, ours_cpu = series("ours", "ms"), series("ours", "cpu_ms")
    # Each warm process has its own raw-call time (its connection to the emulator, the machine's load
    # at that moment): warm figures are compared as each process's ratio to its own raw call.
    ours_warm = [a / r for a, r in zip(of("ours", "warm", "app_us"), of("ours", "warm", "raw_us"), strict=True)]
    subjects: dict[str, dict[str, Any]] = {}
    for subject in SUBJECTS:
        wall, cpu = series(subject, "ms"), series(subject, "cpu_ms")
        row: dict[str, Any] = {}
        for measure, values in wall.items():
            row[f"{measure}_ms"] = round(_median(values), 1)
            row[f"{measure}_vs_floor"] = paired(values, floor_get)
            row[f"{measure}_cpu_vs_floor"] = paired(cpu[measure], floor_get_cpu)
            if subject != "ours" and measure in ours:
                row[f"{measure}_vs_ours"] = paired(values, ours[measure])
                row[f"{measure}_cpu_vs_ours"] = paired(cpu[measure], ours_cpu[measure])
        row["cold_get_modules"] = round(_median(of(subject, "get", "modules")))
        warm, raw = of(subject, "warm", "app_us"), of(subject, "warm", "raw_us")
        row["warm_get_us"] = round(_median(warm))
        row["warm_raw_us"] = round(_median(raw))
        row["warm_get_vs_raw"] = paired(warm, raw)
        row["warm_own_us"] = round(_median([a - r for a, r in zip(warm, raw, strict=True)]))
        if subject != "ours":
            row["warm_get_vs_ours"] = paired([a / r for a, r in zip(warm, raw, strict=True)], ours_warm)
        subjects[subject] = row
    return {
        "rounds": rounds, "warm_requests_per_process": warm_requests, "seconds": round(seconds, 1), "machine": machine(),
        "floor": {"cold_get_ms": round(_median(floor_get), 1), "cold_put_ms": round(_median(of("floor", "post")), 1),
                  "cold_get_cpu_ms": round(_median(floor_get_cpu), 1),
                  "cold_get_modules": round(_median(of("floor", "get", "modules")))},
        **subjects,
        # Every sample, so other summaries can be computed from a run: "subject action" -> per round.
        "samples": {f"{subject} {action}": [{k: round(v, 1) for k, v in sample.items()} for sample in runs]
                    for (subject, action), runs in samples.items()},
    }


def verdicts(peers: dict[str, Any]) -> list[tuple[str, Any, str, bool]]:
    rows = []
    for (subject, key), (op, bound) in TARGETS.items():
        value = peers.get(subject, {}).get(key)
        if value is not None:
            rows.append((f"peers.{subject}.{key}", value, f"{op} {bound}", value <= bound if op == "<=" else value >= bound))
    return rows


COLUMNS = [
    ("cold GET, ms", "cold_get_ms"), ("cold GET / floor", "cold_get_vs_floor"), ("cold GET / ours", "cold_get_vs_ours"),
    ("cold GET / floor, CPU time", "cold_get_cpu_vs_floor"),
    ("cold POST, ms", "cold_post_ms"), ("cold POST / floor", "cold_post_vs_floor"), ("cold POST / ours", "cold_post_vs_ours"),
    ("cold authorizer / floor", "cold_auth_vs_floor"),
    ("cold authorizer with a person's token / floor", "cold_auth_token_vs_floor"),
    ("first request / floor", "first_request_vs_floor"), ("first request / ours", "first_request_vs_ours"),
    ("warm GET, µs", "warm_get_us"), ("warm GET / raw call", "warm_get_vs_raw"), ("warm own work, µs", "warm_own_us"),
    ("warm GET / ours, each over its raw call", "warm_get_vs_ours"), ("modules after cold GET", "cold_get_modules"),
]


def table(peers: dict[str, Any]) -> str:
    """The comparison as a Markdown table (printed by ``make bench``, pasted into docs/PERFORMANCE.md)."""
    lines = ["| measure | " + " | ".join(SUBJECTS) + " |", "| --- |" + " ---: |" * len(SUBJECTS)]
    for label, key in COLUMNS:
        cells = [str(peers[s][key]) if key in peers[s] else "—" for s in SUBJECTS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    floor = peers["floor"]
    lines.append(f"\nfloor: cold GetItem {floor['cold_get_ms']} ms, cold PutItem {floor['cold_put_ms']} ms; "
                 f"{peers['rounds']} interleaved rounds, {peers['warm_requests_per_process']} warm requests per process")
    return "\n".join(lines)
