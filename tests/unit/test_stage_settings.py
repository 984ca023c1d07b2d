"""Every tunable stage setting the application reads can be set for a deployed stage and for the local stack.

A setting read by ``chalicelib.config.settings`` but missing from a pass-through list silently keeps its
default wherever that list applies, which no behaviour test notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from infra.deploy import PASSTHROUGH_SETTINGS
from local.stack import LOCAL_SETTINGS

SETTINGS_SOURCE = Path(__file__).resolve().parents[2] / "chalicelib" / "config" / "settings.py"
# Read by get_settings() as numbers: the operator's knobs (names, URLs and secrets come from the stack).
TUNABLE = re.compile(r'_(?:int|float)\("([A-Z_]+)"')
# The schedule's rate is wired at deploy time from the stage configuration, not passed through.
WIRED_AT_LOAD = {"CLEANUP_RATE_MINUTES"}


def tunable_settings() -> set[str]:
    return set(TUNABLE.findall(SETTINGS_SOURCE.read_text())) - WIRED_AT_LOAD


def test_the_settings_are_found() -> None:
    assert {"RATE_LIMIT_RPS", "UPLOAD_WINDOW_SECONDS", "IMPORT_DEADLINE_SECONDS"} <= tunable_settings()


def test_every_tunable_setting_reaches_a_deployed_stage() -> None:
    assert tunable_settings() - set(PASSTHROUGH_SETTINGS) == set()


def test_every_tunable_setting_reaches_the_local_stack() -> None:
    assert tunable_settings() - set(LOCAL_SETTINGS) == set()


def test_a_request_reads_the_settings_once(client, tenant, monkeypatch) -> None:
    """The API function reads its settings once per invocation, however many parts use them (the
    rate limiter and the item service here): a warm request paid about 25 µs per read."""
    from chalicelib.config import settings

    created = tenant.request("POST", "/items", {"name": "read once"})
    item_id = json.loads(created.body)["id"]
    monkeypatch.setenv("RATE_LIMIT_RPS", "1000")
    monkeypatch.setenv("RATE_LIMIT_BURST", "1000")
    reads: list[settings.Settings] = []
    read = settings.read_settings

    def counted() -> settings.Settings:
        reads.append(read())
        return reads[-1]

    monkeypatch.setattr(settings, "read_settings", counted)
    in_function: list[settings.Settings] = []
    monkeypatch.setattr("chalicelib.items.service.ItemService", _recording(in_function))
    response = tenant.request("GET", f"/items/{item_id}")
    assert response.status_code == 200
    # One read by the authorizer (its own invocation in a deployed stage), one by the API function.
    assert len(reads) == 2
    assert in_function == [reads[-1]]
    assert reads[-1].rate_limit_rps == 1000  # the limiter ran on these settings, not older ones
    served = reads[-1]
    assert settings.get_settings() is not served  # outside an invocation, every call reads


def _recording(seen: list) -> type:
    from chalicelib.items.service import ItemService

    class Recording(ItemService):
        def __init__(self, settings, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            seen.append(settings)
            super().__init__(settings, *args, **kwargs)

    return Recording
