"""Logging set-up: JSON lines or readable console lines, with secrets redacted everywhere.

Redaction happens on the final text of every record, whatever logger produced it (ours,
requests, urllib3, Celery), so a secret cannot slip through an argument or a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from trestle_tasks.masking import MASK

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)((?:client_secret|access_token|password)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',]+"),
    re.compile(r"(://[^:/@\s]*:)[^@\s]+(@)"),
)
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Redactor:
    """Replaces known secret values and secret-looking patterns with the mask."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        with self._lock:
            # Very short values would mask ordinary words; real secrets are longer.
            self._secrets.update(v for v in values if v and len(v) >= 4)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text


def _mask_match(match: re.Match[str]) -> str:
    """Keep the label before the secret (and the `@` after a URL password); mask the rest."""
    tail = match.group(2) if match.lastindex == 2 else ""
    return match.group(1) + MASK + tail


redact = Redactor()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any `extra=` fields (run_id, resource, …) kept."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in vars(record).items()
            if k not in _STANDARD_ATTRS and not k.startswith("_")
        )
        text = super().format(record)
        return redact(f"{text} [{extras}]" if extras else text)


def configure_logging(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger; safe to call more than once."""
    redact.add(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_trestle_tasks", False)]:
        root.removeHandler(existing)
    handler._trestle_tasks = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every URL at DEBUG; keep it at WARNING unless asked for.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
