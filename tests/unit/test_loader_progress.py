"""The loader's progress bars: bytes and numbers while reading, silent without a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from loader.progress import read_progress


def test_read_progress_shows_bytes_and_numbers_on_a_terminal() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    with read_progress(4_000_000, console) as report:
        report(2_000_000, 1_234_567)
        report(2_000_000, 1_000_000)
    text = output.getvalue()
    assert "2,234,567 numbers" in text
    assert "4.0/4.0 MB" in text


def test_read_progress_is_silent_without_a_terminal() -> None:
    output = io.StringIO()
    with read_progress(10, Console(file=output, force_terminal=False)) as report:
        report(10, 3)
    assert output.getvalue() == ""
