"""Batch scrubbing of lead files: ``suppression scrub INPUT``.

Reads a CSV or TSV lead file, checks every row's phone number locally or
against servers, and writes clean, suppressed and invalid files plus a
summary whose counts add up. See ``docs/scrub.md``.
"""

from suppression.scrub.interrupts import ScrubInterruptedError
from suppression.scrub.job import run_scrub
from suppression.scrub.options import ScrubOptions
from suppression.scrub.summary import ScrubSummary

__all__ = ["ScrubInterruptedError", "ScrubOptions", "ScrubSummary", "run_scrub"]
