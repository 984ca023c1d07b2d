"""Every tunable stage setting the application reads can be set for a deployed stage and for the local stack.

A setting read by ``chalicelib.config.settings`` but missing from a pass-through list silently keeps its
default wherever that list applies, which no behaviour test notices.
"""

from __future__ import annotations

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
