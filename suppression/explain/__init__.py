"""Evidence: Explain a number at a point in time, and write complaint reports."""

from __future__ import annotations

from suppression.explain.model import (
    POLICY_NOTE,
    ChangeRecord,
    Explanation,
    ListAnswer,
    explain,
    version_at_time,
)

__all__ = [
    "POLICY_NOTE",
    "ChangeRecord",
    "Explanation",
    "ListAnswer",
    "explain",
    "version_at_time",
]
