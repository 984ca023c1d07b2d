"""`make bench` with tiny sizes, so the benchmark cannot rot: it runs and reports every measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.run import PACKAGE_BUDGET_BYTES
from tests.localstack import ROOT

KEYS = {
    "cold_start": {"app_ms", "floor_ms", "ratio"},
    "warm_request": {"app_us", "floor_us", "ratio"},
    "list_scaling": {"small_items", "large_items", "small_ms", "large_ms", "ratio"},
    "cleanup": {"table_items", "expired", "items_read", "ratio"},
    "import": {"rows", "seconds", "rows_per_s", "write_calls", "rows_per_write_call", "peak_rss_mb"},
    "package": {"zip_bytes"},
    "import_limits": {"seconds_per_1m_rows", "invocation_peak_rss_mb", "projected_lambda_seconds",
                      "invocations_needed", "tmp_mb_per_1m_ids"},
    "calls_per_request": {"get", "create", "put", "patch", "delete", "list_page", "find_page"},
    "finding_scaling": {"small_items", "large_items", "tag", "q", "sort_name", "sort_updated_at", "sort_id",
                        "worst_ratio"},
    "write_cost": {"tags_0", "tags_5", "tags_20"},
    "peers": {"rounds", "machine", "floor", "ours", "seed", "powertools", "fastapi"},
}
PEER_KEYS = {
    "ours": {"cold_get_vs_floor", "cold_post_vs_floor", "cold_auth_vs_floor", "cold_auth_token_vs_floor",
             "first_request_vs_floor", "warm_get_vs_raw"},
    "seed": {"cold_get_vs_floor", "cold_get_vs_ours", "first_request_vs_ours", "warm_get_vs_raw", "warm_get_vs_ours"},
    "powertools": {"cold_get_vs_ours", "cold_post_vs_ours", "warm_get_vs_ours"},
    "fastapi": {"cold_get_vs_ours", "cold_post_vs_ours", "warm_get_vs_ours"},
}


def test_smoke_benchmark_reports_every_measure(tmp_path):
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "QUEUE_", "BUCKET_"))}
    done = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    for section, keys in KEYS.items():
        assert keys <= set(results[section]), section
    for subject, keys in PEER_KEYS.items():
        assert keys <= set(results["peers"][subject]), subject
        assert all(value > 0 for key, value in results["peers"][subject].items() if key.endswith(("_vs_floor", "_vs_ours")))
    # Counts do not depend on the machine's speed: these hold at any size.
    assert results["calls_per_request"] == dict.fromkeys(KEYS["calls_per_request"], 1)
    assert results["cleanup"]["items_read"] <= 2 * results["cleanup"]["expired"]
    assert results["import"]["rows_per_write_call"] >= 20
    # A create is one call whatever its tags; changing tags costs one transaction more than keeping them.
    for tags in ("tags_0", "tags_5", "tags_20"):
        cost = results["write_cost"][tags]
        assert (cost["create_calls"], cost["update_calls"]) == (1, 1), cost
        assert cost["retag_calls"] == (1 if tags == "tags_0" else 2), cost
    assert results["write_cost"]["tags_0"]["create_wcu"] < results["write_cost"]["tags_5"]["create_wcu"] < (
        results["write_cost"]["tags_20"]["create_wcu"])
    assert results["package"]["zip_bytes"] <= PACKAGE_BUDGET_BYTES
    # The smoke run never starts mutmut; it reports the last `make mutation` when there is one.
    assert set(results["mutation"]) in (set(), {"mutants", "killed", "survived", "kill_ratio", "seconds"})
