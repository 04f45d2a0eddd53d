"""Logging: JSON lines in production, readable text in a terminal; secrets redacted everywhere."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from app.config import Settings

# What the current request or job is about; every record logged inside it carries these fields.
# Context variables follow asyncio tasks, so concurrent requests and jobs never mix them up.
LOG_CONTEXT_FIELDS = ("request_id", "entry_id", "tenant_id", "instance_id", "job_id")
_CONTEXT: dict[str, ContextVar[str | None]] = {name: ContextVar(name, default=None) for name in LOG_CONTEXT_FIELDS}


def bind_log_context(**fields: object) -> None:
    """Attach fields (see LOG_CONTEXT_FIELDS) to every record logged from now on in this task."""
    for name, value in fields.items():
        _CONTEXT[name].set(None if value is None else str(value))


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Attach fields to every record logged inside the block (restored afterwards)."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(None if value is None else str(value)))
              for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_log_context() -> dict[str, str]:
    return {name: value for name, var in _CONTEXT.items() if (value := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Copies the bound request/job fields onto each record (explicit `extra=` values win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_log_context().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("request_id", "entry_id")
                       if getattr(record, k, None) is not None)
        record.context = f" [{ids}]" if ids else ""
        return True

# anything that looks like one of our secrets or an OAuth credential in a message or argument
_SECRET_PATTERNS = [
    re.compile(r"(tts_)[A-Za-z0-9_\-]{20,}"),
    re.compile(r"(whsec_)[A-Za-z0-9_\-]{20,}"),
    # query/form style (oauth_token=…) and Authorization-header style (oauth_token="…")
    re.compile(r"(oauth_(?:token|token_secret|signature|verifier)=\"?)[^&\s\"',]+"),
    # key/value renderings of our own credential names (kwargs, dict reprs, JSON)
    re.compile(r"((?:access_token|refresh_token|token_secret|request_secret|private_key_pem|webhook_secret|"
               r"client_secret|code_verifier|personal_access_token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"),
    # an OAuth 2.0 callback's query (its code and state are credentials until used)
    re.compile(r"([?&](?:code|state)=)[^&\s\"']+"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9_\-\.=+/~]+", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites every record's message (args included) with secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in LOG_CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = str(value)
        if record.exc_info:
            data["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if use_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s")
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ttsync", False):
            root.removeHandler(h)
    handler._ttsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
