"""Logs: JSON and text output, and the masking filter that keeps numbers out of every line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.logs import configure_logging, mask_text, report_error, requested_format
from tests.conftest import REPO

NUMBERS = ("+8613800138000", "8613800138000", "12125550123", "+442079460958")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("opt-out from +8613800138000", "opt-out from +86138****8000"),
        ("+86 138 0013 8000 asked", "+86138****8000 asked"),
        ("call 1-212-555-0123 now", "call 1212****123 now"),
        ("tel:+12125550123;ext=1", "tel:+1212****123;ext=1"),
        ("two: 8613800138000 12125550123", "two: 86138****8000 1212****123"),
        ("full-width +８６１３８００１３８０００", "full-width +８６１３８****８０００"),
        # Change-log entry IDs, IDs too long to be a number, and short numbers are kept.
        ("at version 1700000000000-5", "at version 1700000000000-5"),
        ("snapshot-00000001700000000000-00000000000000000005.snap", None),
        ("port 50051, pid 12345, 1,204,112 bytes", None),
    ],
)
def test_mask_text(text: str, expected: str | None) -> None:
    assert mask_text(text) == (text if expected is None else expected)


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A 7-15 digit number as a person or a program might write it: (digits, text)."""
    digits = str(draw(st.integers(10**6, 10**15 - 1)))
    style = draw(st.sampled_from(["plain", "plus", "grouped"]))
    if style != "grouped":
        return digits, ("+" if style == "plus" else "") + digits
    groups, rest = [], digits
    while rest:
        size = draw(st.integers(1, 4))
        groups.append(rest[:size])
        rest = rest[size:]
    separator = draw(st.sampled_from([" ", "-"]))
    return digits, draw(st.sampled_from(["", "+"])) + separator.join(groups)


no_digits = st.text(st.characters(blacklist_categories=["Nd"]), max_size=20)


@given(written_numbers(), no_digits, no_digits)
def test_mask_text_hides_any_written_number(
    number: tuple[str, str], before: str, after: str
) -> None:
    digits, text = number
    masked = mask_text(before + text + after)
    assert digits not in masked
    assert text not in masked


def _emit_everything(logger: logging.Logger) -> None:
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        logger.log(level, "number %s in the arguments", NUMBERS[0])
        logger.log(level, f"number {NUMBERS[1]} in the message")
        logger.log(level, "in an extra field", extra={"caller": f"agent at {NUMBERS[2]}"})
    try:
        raise ValueError(f"bad number {NUMBERS[3]}")
    except ValueError:
        logger.exception("failed for %s", NUMBERS[2])
    logger.warning("with a stack", stack_info=True, extra={"number": NUMBERS[1]})


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_level_or_format_writes_a_full_number(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", fmt)
    _emit_everything(logging.getLogger("suppression.test"))
    output = capsys.readouterr().err
    assert output.count("\n") >= 17
    assert "+86138****8000" in output
    assert "ValueError" in output
    for number in NUMBERS:
        assert number.lstrip("+") not in output


def test_json_lines_are_structured(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logger = logging.getLogger("suppression.test")
    logger.debug("not shown")
    logger.info("loaded %s lists", 3, extra={"list_count": 3, "source": "registry"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "loaded 3 lists"
    assert (first["level"], first["logger"]) == ("INFO", "suppression.test")
    assert (first["list_count"], first["source"]) == (3, "registry")
    assert first["time"].endswith("Z")
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exception"]


def test_malformed_calls_and_uncaught_exceptions_are_masked_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("suppression.test").info("two placeholders %s %s", NUMBERS[0])
    try:
        raise RuntimeError(f"crashed on {NUMBERS[1]}")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())

    def crash() -> None:
        raise ValueError(f"thread crashed on {NUMBERS[2]}")

    thread = threading.Thread(target=crash, name="crasher")
    thread.start()
    thread.join()
    output = capsys.readouterr().err
    assert "unformattable arguments" in output
    assert "uncaught exception in thread crasher" in output
    assert "RuntimeError: crashed on 86138****8000" in output
    for number in NUMBERS:
        assert number.lstrip("+") not in output


# -- counts stay readable, numbers stay masked --------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "read 12,345,678 numbers and 3 blocks from 2 file(s) in 1.23 s (10.0 million numbers/s)",
        "loaded 258,000,000 numbers in 0.78 s at version 1700000000000-5",
        "published 1,200,000 change(s) to internal; version 1764087600000-0",
        "1,000,000 line(s) are not numbers (line 1,234,567: TOO_LONG)",
        "listening on 127.0.0.1:50051, Redis at 192.168.100.200:6379",
        "a batch of 100,000 took 12.34 ms",
    ],
)
def test_counts_versions_timings_and_addresses_stay_readable(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("opt-out +8613800138000 recorded", "8613800138000"),
        ("opt-out 13800138000 recorded", "13800138000"),
        ("call 2125550123 later", "2125550123"),
        ("call 212.555.0123 later", "5550123"),
        ("call +1 212.555.0123 later", "5550123"),
        ("call 138.0013.8000 later", "00138000"),
        ("call 212-555-0123 later", "5550123"),
        ("file.13800138000.csv", "13800138000"),
        ("read 12345678 numbers", "12345678"),  # a bare count could be a number: masked
    ],
)
def test_phone_numbers_stay_masked_in_any_grouping(text: str, hidden: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked.replace(".", "").replace("-", "").replace(" ", "")


@given(written_numbers(), st.sampled_from([" ", ".", "-"]), no_digits, no_digits)
def test_mask_text_hides_numbers_grouped_by_dots_too(
    number: tuple[str, str], separator: str, before: str, after: str
) -> None:
    digits, text = number
    dotted = text.replace(" ", separator).replace("-", separator)
    masked = mask_text(before + dotted + after)
    plain = masked.replace(separator, "")
    if not _is_ipv4(dotted):
        assert digits not in plain


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def test_loader_read_summary_keeps_its_counts(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    numbers = 12_345_678
    logging.getLogger("loader.cli").info("read %s numbers", f"{numbers:,}")
    assert "read 12,345,678 numbers" in capsys.readouterr().err


# -- fatal errors: one line, JSON when asked ----------------------------------


def test_report_error_is_one_masked_line_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    report_error("suppression-loader", "cannot publish +8613800138000:\nRedis is down")
    err = capsys.readouterr().err
    assert err == "suppression-loader: error: cannot publish +86138****8000: Redis is down\n"


def test_report_error_is_a_json_record_whatever_the_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("CRITICAL", "json")
    report_error("suppression", "no list 'x' for 13800138000")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("ERROR", "suppression")
    assert record["message"] == "no list 'x' for 1380****000"


def test_requested_format_reads_the_flag_then_the_environment() -> None:
    assert requested_format(["import", "--log-format", "json"], {}) == "json"
    assert requested_format(["import", "--log-format=JSON"], {}) == "json"
    assert requested_format([], {"SUPPRESSION_LOG_FORMAT": "json"}) == "json"
    assert requested_format(["--log-format", "text"], {"SUPPRESSION_LOG_FORMAT": "json"}) == "text"
    assert requested_format(["--log-format", "yaml"], {}) == "text"


def test_python_warnings_go_through_the_json_handler() -> None:
    # In a child process: pytest replaces the warnings machinery in this one.
    code = (
        "import warnings\n"
        "from suppression.logs import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "warnings.warn('deprecated thing for 13800138000', DeprecationWarning, stacklevel=1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["logger"] == "py.warnings"
    assert "DeprecationWarning" in record["message"]
    assert "13800138000" not in lines[0]


def test_integer_extra_fields_that_could_be_numbers_are_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    extra = {"number": 8613800138000, "batch": 100_000, "ok": True}
    logging.getLogger("suppression.test").info("with integer extras", extra=extra)
    record = json.loads(capsys.readouterr().err)
    assert record["number"] == "86138****8000"
    assert (record["batch"], record["ok"]) == (100_000, True), "small counts stay integers"
