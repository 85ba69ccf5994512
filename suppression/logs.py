"""Logging set-up: text or JSON lines; numbers reach logs only through e164.mask_number.

Call sites mask every number they log. :class:`MaskingFilter` is the safety
net behind them: ``configure_logging`` installs it on the handler, so every
record from every logger, at every level, has anything that looks like a
phone number masked in its message, exception text and extra fields before it
is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from types import TracebackType
from typing import Any

from suppression.e164 import mask_number

__all__ = ["JsonFormatter", "MaskingFilter", "configure_logging", "mask_text"]

_DIGIT_GROUP = re.compile(r"\d+")

_CANDIDATE = re.compile(
    r"(?<!\d)(?:(?P<entry_id>\d{13}-\d+)(?!\d)|(?P<number>\+?\d+(?:[ \-]\d+)*))"
)
"""A change-log entry ID (kept), or digits joined by single spaces or hyphens."""

_MIN_DIGITS = 7
_MAX_DIGITS = 15
"""E.164 numbers have at most 15 digits; a longer run is an ID, not a number."""


def _mask_run(text: str) -> str:
    plus = "+" if text.startswith("+") else ""
    masked = mask_number(text)
    return masked if plus else masked[1:]


def _mask_candidate(match: re.Match[str]) -> str:
    text = match.group("number")
    if text is None:
        return match.group(0)
    digits = sum(len(group) for group in _DIGIT_GROUP.findall(text))
    if _MIN_DIGITS <= digits <= _MAX_DIGITS:
        return _mask_run(text)
    if digits < _MIN_DIGITS:
        return text
    # Too long to be one number: mask each group that could be one by itself.
    return _DIGIT_GROUP.sub(
        lambda group: (
            _mask_run(group.group(0))
            if _MIN_DIGITS <= len(group.group(0)) <= _MAX_DIGITS
            else group.group(0)
        ),
        text,
    )


def mask_text(text: str) -> str:
    """Mask everything in ``text`` that looks like a phone number.

    Runs of 7 to 15 digits, with an optional ``+`` and optionally grouped by
    single spaces or hyphens (``+86 138 0013 8000``, ``1-212-555-0123``), are
    masked with :func:`suppression.e164.mask_number`. Change-log entry IDs
    (``1700000000000-5``) and runs longer than 15 digits, which cannot be a
    number, are kept. Counts above a million are masked too unless written
    with thousands separators (``f"{n:,}"``), which log messages should use.

    >>> mask_text("opt-out from +8613800138000 at version 1700000000000-5")
    'opt-out from +86138****8000 at version 1700000000000-5'
    """
    return _CANDIDATE.sub(_mask_candidate, text)


_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class MaskingFilter(logging.Filter):
    """Masks phone-number-like digit runs in a record's message, exception and extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops one."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A malformed call: logging's error report would print the raw arguments.
            message = f"{record.msg} (unformattable arguments: {record.args!r})"
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, key, mask_text(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, any exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send logs to stderr in the chosen format, masked, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
        )
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Uncaught exceptions would otherwise print their tracebacks past the filter.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_uncaught_logger = logging.getLogger("suppression.uncaught")


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    _uncaught_logger.critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "unknown"
    _uncaught_logger.critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
