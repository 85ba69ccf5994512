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
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from suppression.e164 import mask_number

__all__ = [
    "JsonFormatter",
    "MaskingFilter",
    "configure_logging",
    "mask_text",
    "report_error",
    "requested_format",
]

_DIGIT_GROUP = re.compile(r"\d+")

_CANDIDATE = re.compile(
    r"(?<!\d)(?:(?P<entry_id>\d{13}-\d+)(?!\d)|(?P<number>\+?\d+(?:[ .\-]\d+)*))"
)
"""A change-log entry ID (kept), or digits joined by single spaces, dots or hyphens."""

_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
"""An IPv4 address is kept: ``212.555.0123`` is not one (555 > 255), so it stays masked."""

_MIN_DIGITS = 7
_MAX_DIGITS = 15
"""E.164 numbers have at most 15 digits; a longer run is an ID, not a number."""


def _mask_run(text: str) -> str:
    plus = "+" if text.startswith("+") else ""
    masked = mask_number(text)
    return masked if plus else masked[1:]


def _mask_candidate(match: re.Match[str]) -> str:
    text = match.group("number")
    if text is None or _IPV4.fullmatch(text):
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
    single spaces, dots or hyphens (``+86 138 0013 8000``, ``1-212-555-0123``,
    ``212.555.0123``), are masked with :func:`suppression.e164.mask_number`.
    Change-log entry IDs (``1700000000000-5``), IPv4 addresses and runs longer
    than 15 digits, which cannot be a number, are kept.

    A bare count of a million or more cannot be told from a phone number, so it
    is masked too: messages write counts with thousands separators
    (``f"{n:,}"``: ``1,234,567``), which no phone number format uses, and
    timings with a few decimals (``"%.2f"``).

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
            if key in _RECORD_FIELDS:
                continue
            if isinstance(value, str):
                setattr(record, key, mask_text(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                # extra={"number": 8613800138000} would reach JSON logs as a bare integer.
                text = str(value)
                if mask_text(text) != text:
                    setattr(record, key, mask_text(text))
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
    # Python's warnings would otherwise be written to stderr as plain, unmasked text.
    logging.captureWarnings(True)
    # Uncaught exceptions would otherwise print their tracebacks past the filter.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def requested_format(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The log format asked for by ``--log-format`` in ``argv`` or else by the environment.

    Read before the command line is parsed, so that even a usage error is
    written in the format the operator asked for. Anything but ``json`` is text.
    """
    wanted = env.get("SUPPRESSION_LOG_FORMAT", "")
    for index, arg in enumerate(argv):
        if arg == "--log-format" and index + 1 < len(argv):
            wanted = argv[index + 1]
        elif arg.startswith("--log-format="):
            wanted = arg.partition("=")[2]
    return "json" if wanted.strip().lower() == "json" else "text"


def report_error(prog: str, message: str) -> None:
    """Write a command's fatal error as one stderr line, masked.

    With JSON logging configured, the line is a JSON log record (level ERROR,
    logger ``prog``), written whatever ``--log-level`` is; otherwise it reads
    ``prog: error: message``.
    """
    text = mask_text(" ".join(message.split()))
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    if not handlers:
        print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
        return
    record = logging.LogRecord(prog, logging.ERROR, __file__, 0, text, None, None)
    for handler in handlers:
        handler.handle(record)


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
