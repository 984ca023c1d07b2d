"""The import's storage-event handler in a fresh process, to measure its peak memory.

Invokes the function Lambda would call for the uploaded file, then prints its wall and CPU seconds,
the process's peak RSS and the AWS calls it made.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    sys.path.insert(0, os.getcwd())
    import app
    from local.dispatcher import LambdaContext

    bucket, key = sys.argv[1], sys.argv[2]
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Post", "eventTime": "2026-01-01T00:00:00.000Z",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": key, "size": int(sys.argv[3])}},
    }]}
    calls = count_calls()
    started, cpu_started = time.perf_counter(), os.times()
    app.on_import_uploaded(event, LambdaContext("on_import_uploaded", 900, 1024))
    seconds, cpu = time.perf_counter() - started, os.times()
    cpu_seconds = (cpu.user - cpu_started.user) + (cpu.system - cpu_started.system)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_rss_kib() / 1024,
                      "calls": dict(calls)}))


def count_calls() -> dict[str, int]:
    """The AWS calls the handler makes (its clients are created on first use: hook the session)."""
    from collections import Counter

    from chalicelib.store import aws

    counts: Counter[str] = Counter()

    def count(model: object, **_kwargs: object) -> None:
        counts[getattr(model, "name", "?")] += 1

    for client in (aws.dynamodb(), aws.s3(), aws.sqs()):
        client.meta.events.register("before-call.*.*", count, unique_id="bench-child-count")
    return counts


def peak_rss_kib() -> int:
    """This process's high-water mark of resident memory (``VmHWM``).

    Not ``getrusage``: its ``ru_maxrss`` survives ``exec`` and would report the benchmark process
    this one was forked from.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


main()
