"""Stop signals during a scrub: one exception, never twice, never in the middle of the end."""

from __future__ import annotations

import signal

import pytest

from suppression.scrub.interrupts import Interrupts, ScrubInterruptedError


def test_a_signal_becomes_one_error_with_a_one_line_message() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with Interrupts():
        with pytest.raises(ScrubInterruptedError) as stopped:
            signal.raise_signal(signal.SIGTERM)
        assert str(stopped.value) == "scrub interrupted by SIGTERM; no output was written"
        signal.raise_signal(signal.SIGINT)  # during the clean-up: ignored
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_held_block_runs_whole_and_the_signal_is_raised_after_it() -> None:
    with Interrupts() as interrupts:
        with interrupts.held():
            signal.raise_signal(signal.SIGINT)
            finished = True
        assert finished
        with pytest.raises(ScrubInterruptedError, match="SIGINT"):
            interrupts.raise_pending()


def test_after_hold_a_signal_no_longer_stops_the_scrub() -> None:
    with Interrupts() as interrupts:
        interrupts.hold()
        signal.raise_signal(signal.SIGHUP)
        interrupts.raise_pending()  # the scrub is past undoing: nothing is raised
    assert interrupts.pending == signal.SIGHUP
