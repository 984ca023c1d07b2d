"""The stage's CORS origin, checked before the app starts.

API Gateway answers preflight requests from the configuration Chalice reads when it imports the
app (at deploy time, with the stage's environment variables), and Lambda reads it again at
import. Checking here therefore refuses both: ``chalice deploy --stage prod`` fails, and a prod
function whose environment says ``*`` does not start. Other stages may use ``*`` (handy for a
developer's scratch front end); prod must name its front end's origin.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from chalicelib.config.settings import PRODUCTION_STAGES, ConfigurationError

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


def allowed_origin(environ: Mapping[str, str] = os.environ) -> str:
    """``CORS_ALLOW_ORIGIN`` for this stage: ``*`` (not in prod) or one ``scheme://host[:port]``."""
    origin = environ.get("CORS_ALLOW_ORIGIN", "").strip() or "*"
    stage = environ.get("STAGE", "dev")
    if origin == "*":
        if stage in PRODUCTION_STAGES:
            raise ConfigurationError(
                f"CORS_ALLOW_ORIGIN must name the front end's origin in stage {stage!r}; '*' is refused"
            )
        return origin
    if not _ORIGIN.match(origin):
        raise ConfigurationError(f"CORS_ALLOW_ORIGIN must be '*' or one origin such as https://app.example.com, "
                                 f"got {origin!r}")
    return origin
