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
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from trestle_tasks.core.logfiles import SharedRotatingFileHandler
from trestle_tasks.core.masking import MASK

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    # MySQL's "(using password: YES)" says whether one was sent, not what it was.
    re.compile(r"(?i)((?:client_secret|access_token|password)[\"']?\s*[=:]\s*[\"']?)"
               r"(?!(?:YES|NO)\))[^\s&\"',]+"),
    re.compile(r"(://[^:/@\s]*:)[^@\s]+(@)"),
)
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Redactor:
    """Replaces known secret values and secret-looking patterns with the mask."""

    def __init__(self, *, issued_kept: int = 64) -> None:
        self._secrets: set[str] = set()
        # Access tokens are issued all day long: the forms of the last `issued_kept` are
        # masked (a long-lived worker would otherwise grow the list, and every redaction
        # with it, forever; a token older than that many refreshes expired long ago).
        self._issued: deque[frozenset[str]] = deque(maxlen=issued_kept)
        self._lock = threading.Lock()
        self._longest_first: tuple[str, ...] = ()  # rebuilt on change, not per line

    def _rebuild(self) -> None:
        known = self._secrets.union(*self._issued)
        self._longest_first = tuple(sorted(known, key=len, reverse=True))

    def add(self, values: Iterable[str | None]) -> None:
        """Mask these values, and the forms they take on their way into text: percent-
        encoded (a form body, a URL; or decoded, when the setting held the encoded form),
        JSON-escaped (a JSON log line) and repr-escaped (an exception's repr)."""
        forms = {form for value in values if value for form in secret_forms(value)}
        with self._lock:
            # Very short values would mask ordinary words; real secrets are longer.
            self._secrets.update(f for f in forms if len(f) >= 4)
            self._rebuild()

    def add_issued(self, value: str) -> None:
        """Mask a credential issued at run time (an access token) by value, in this
        process: a server echoing it (`token=…` in a 403 body) must not carry it into
        exceptions, Celery results, the sync log or log files. Cheap when already known:
        it is called on every token use, including one another process fetched."""
        if len(value) < 4:  # as in `add`: would mask ordinary words
            return
        with self._lock:
            if any(value in forms for forms in self._issued):
                return
        forms = frozenset(f for f in secret_forms(value) if len(f) >= 4)
        with self._lock:
            self._issued.append(forms)
            self._rebuild()

    def __call__(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text


def secret_forms(value: str) -> set[str]:
    """`value` as it may appear in text after encoding (see `Redactor.add`)."""
    forms = {value, unquote(value), unquote_plus(value)}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote(form), quote_plus(form),
                      json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1],
                      repr(form)[1:-1]})
    return forms


def _mask_match(match: re.Match[str]) -> str:
    """Keep the label before the secret (and the `@` after a URL password); mask the rest."""
    tail = match.group(2) if match.lastindex == 2 else ""
    return match.group(1) + MASK + tail


redact = Redactor()

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("trestle_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every log line emitted inside carries these fields (run_id, resource, window…)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record, without overriding `extra=`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


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


API_LOGGER = "trestle_tasks.api"
LOG_FILE_BYTES = 20 * 2**20
LOG_FILE_BACKUPS = 10


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    log_dir: str | Path | None = None,
) -> None:
    """Install our handlers on the root logger; safe to call more than once.

    With `log_dir`, three rotating JSON files as well: application.log (everything at
    `level`), errors.log (warnings and errors) and api.log (one line per HTTP request to
    Trestle, kept out of the other two). Every process of a host may write the same
    folder: rotation is coordinated between them (see logfiles.py).
    """
    redact.add(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    root = logging.getLogger()
    api = logging.getLogger(API_LOGGER)
    for logger in (root, api):
        for existing in [h for h in logger.handlers if getattr(h, "_trestle_tasks", False)]:
            logger.removeHandler(existing)
            existing.close()
    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handlers.append((root, console))
    api.propagate = False  # request lines go to api.log only
    api.setLevel(logging.WARNING)
    if log_dir is not None:
        folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, logger, file_level in (
            ("application.log", root, logging.NOTSET),
            ("errors.log", root, logging.WARNING),
            ("api.log", api, logging.DEBUG),
        ):
            # Safe with several writers: Celery's prefork processes all write these files.
            file_handler = SharedRotatingFileHandler(folder / name, max_bytes=LOG_FILE_BYTES,
                                                     backup_count=LOG_FILE_BACKUPS)
            file_handler.setLevel(file_level)
            file_handler.setFormatter(JsonFormatter())
            handlers.append((logger, file_handler))
        api.setLevel(logging.DEBUG)
    for logger, handler in handlers:
        handler.addFilter(ContextFilter())
        # Marks ours, for the removal above and cli.py: an attribute no Handler declares.
        handler._trestle_tasks = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every URL at DEBUG; keep it at WARNING unless asked for.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
