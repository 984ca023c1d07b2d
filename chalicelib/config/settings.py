"""Stage settings, read from the environment.

Read lazily: Chalice's test client sets a stage's environment variables only while a request runs,
and Lambda sets them before import, so a module-level snapshot would be wrong in one of the two.
Inside an invocation of the API function the settings are read once, when it starts
(``for_invocation``, entered by the API's middleware), and every ``get_settings()`` of that
invocation returns the same object; outside one (the authorizer, event handlers, scripts, tests)
each call reads the environment afresh. Reading costs about 25 µs (some twenty variables, six of
them parsed as numbers), which a warm request would otherwise pay once per reader
(docs/PERFORMANCE.md).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chalicelib import __version__
from chalicelib.config import secret_store

# Stages held to production rules (CORS origin named, secrets from SSM).

PRODUCTION_STAGES = frozenset({"prod"})


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed: a deployment bug, never a client error."""


@dataclass(frozen=True)
class Settings:
    stage: str
    table_name: str
    bucket_name: str
    queue_url: str
    app_version: str
    cursor_secrets_inline: tuple[bytes, ...]
    cursor_secrets_parameter: str
    rate_limit_rps: float
    rate_limit_burst: int
    upload_window_seconds: int
    max_attachment_bytes: int
    max_import_bytes: int
    import_deadline_seconds: int
    region: str
    user_pool_id: str
    user_pool_client_id: str

    @property
    def cursor_secrets(self) -> tuple[bytes, ...]:
        """The cursor secrets: the first signs, all verify (rotation without breaking cursors).

        ``CURSOR_SECRETS`` (inline, for the local stack and tests) or, in a deployed stage,
        ``CURSOR_SECRETS_PARAMETER``: the name of an SSM SecureString holding the same list, read on
        first use and cached (``secret_store``). Prod refuses inline secrets: an environment
        variable is readable by anyone who may read the function's configuration.
        """
        if self.cursor_secrets_parameter:
            secrets = split_secrets(secret_store.parameter_value(self.cursor_secrets_parameter))
            if not secrets:
                raise ConfigurationError(f"the parameter {self.cursor_secrets_parameter} holds no secret")
            return secrets
        if self.cursor_secrets_inline and self.stage in PRODUCTION_STAGES:
            raise ConfigurationError("prod reads its cursor secrets from CURSOR_SECRETS_PARAMETER (SSM), not inline")
        return self.cursor_secrets_inline

    @property
    def cursor_signing_secret(self) -> bytes:
        return self.cursor_secrets[0]


def _number(name: str, default: float, kind: type[float], what: str) -> float:
    raw = os.environ.get(name, "")
    try:
        return kind(raw) if raw else default
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be {what}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return int(_number(name, default, int, "an integer"))


def _float(name: str, default: float) -> float:
    return _number(name, default, float, "a number")


def split_secrets(raw: str) -> tuple[bytes, ...]:
    """A comma-separated secret list; the first signs, all verify (rotation without breakage)."""
    return tuple(s.strip().encode() for s in raw.split(",") if s.strip())


# The settings of the invocation being served (``for_invocation``); None outside one.
_invocation: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("invocation_settings", default=None)


def get_settings() -> Settings:
    """The stage's settings: the invocation's, inside ``for_invocation``; otherwise read now."""
    settings = _invocation.get()
    return settings if settings is not None else read_settings()


@contextmanager
def for_invocation() -> Iterator[Settings]:
    """Read the settings once; ``get_settings()`` returns them until the block ends."""
    settings = read_settings()
    token = _invocation.set(settings)
    try:
        yield settings
    finally:
        _invocation.reset(token)


def read_settings() -> Settings:
    """The settings as the environment has them now."""
    return Settings(
        stage=os.environ.get("STAGE", "dev"),
        table_name=os.environ.get("TABLE_NAME", ""),
        bucket_name=os.environ.get("BUCKET_NAME", ""),
        queue_url=os.environ.get("QUEUE_URL", ""),
        app_version=os.environ.get("APP_VERSION", __version__),
        cursor_secrets_inline=split_secrets(os.environ.get("CURSOR_SECRETS", "")),
        cursor_secrets_parameter=os.environ.get("CURSOR_SECRETS_PARAMETER", "").strip(),
        rate_limit_rps=_float("RATE_LIMIT_RPS", 0.0),
        rate_limit_burst=_int("RATE_LIMIT_BURST", 0),
        upload_window_seconds=_int("UPLOAD_WINDOW_SECONDS", 3600),
        max_attachment_bytes=_int("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024),
        max_import_bytes=_int("MAX_IMPORT_BYTES", 100 * 1024 * 1024),
        # How long an import may stay ``processing`` before the cleanup job fails it (docs/EVENTS.md).
        import_deadline_seconds=_int("IMPORT_DEADLINE_SECONDS", 3 * 3600),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        # The stage's Cognito user pool and its browser app client (docs/AUTH.md); unset, only API
        # keys sign requests.
        user_pool_id=os.environ.get("USER_POOL_ID", "").strip(),
        user_pool_client_id=os.environ.get("USER_POOL_CLIENT_ID", "").strip(),
    )


def require(value: str, name: str) -> str:
    if not value:
        raise ConfigurationError(f"{name} is not set for this stage")
    return value


def cleanup_rate_minutes() -> int:
    """CLEANUP_RATE_MINUTES (default 15): how often the cleanup job runs.

    Read when the app is loaded, because the schedule is part of what ``chalice deploy`` wires;
    Chalice loads the app with the stage's environment variables, so this is a stage setting.
    """
    minutes = _int("CLEANUP_RATE_MINUTES", 15)
    if minutes < 1:
        raise ConfigurationError(f"CLEANUP_RATE_MINUTES must be at least 1, got {minutes}")
    return minutes
