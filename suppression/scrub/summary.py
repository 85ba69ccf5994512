"""A scrub's summary: counts that must add up, in JSON and as a readable table."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from suppression.errors import SuppressionError

__all__ = ["ScrubSummary", "SummaryError"]


class SummaryError(SuppressionError):
    """The counts do not add up: a bug, reported instead of writing a wrong summary."""


@dataclass(frozen=True, slots=True)
class ScrubSummary:
    """What a scrub read, decided and wrote.

    ``rows_in == clean + suppressed + invalid + deferred + duplicates_dropped``
    always; construction fails otherwise, so no summary can hide a lost row.
    """

    input: str
    mode: str
    """``local`` or ``remote``."""
    encoding: str
    delimiter: str
    column: str
    column_detection: str
    region: str
    rows_in: int
    clean: int
    suppressed: int
    invalid: int
    duplicates: int
    """Rows whose E.164 number already appeared on an earlier row."""
    distinct_numbers: int
    """Distinct valid E.164 numbers."""
    blank_lines: int
    lists_checked: tuple[str, ...]
    suppressed_per_list: Mapping[str, int]
    """Rows matched per list; a row on two lists counts for both."""
    invalid_per_reason: Mapping[str, int]
    data_versions: Mapping[str, str]
    """Version of the data that answered, per source (target or ``local``)."""
    duplicates_dropped: int = 0
    """Duplicate rows left out by ``--dedupe`` (0 without it)."""
    deferred: int = 0
    """Under a pre-dial policy: rows not to dial yet (the deferred file)."""
    policy: str = ""
    """The policy the rows were decided under; "" on the lists alone."""
    policy_version: str = ""
    """That policy file's version."""
    decided_at: str = ""
    """The instant every row was decided for (ISO 8601, UTC); "" without a fixed one."""
    first_data_versions: Mapping[str, str] = field(default_factory=dict)
    """Sources whose data moved during the scrub: the version of their first answers."""
    stale: bool = False
    failed_closed: bool = False
    resumed_at_line: int = 0
    """``--resume``: the input line this run started at (0: from the start)."""
    rechecked_lines: int = 0
    """``--resume``: input lines checked again because the data changed since the interruption."""
    retried_on: Mapping[str, int] = field(default_factory=dict)
    """Remote: batches each target answered after the target that first had them failed."""
    failed_targets: Mapping[str, str] = field(default_factory=dict)
    """Remote: targets that failed during the scrub (down, or no answer in time), and why."""
    seconds: float = 0.0
    outputs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.balanced:
            total = self.written + self.duplicates_dropped
            raise SummaryError(
                f"internal error: {self.rows_in:,} rows read but {total:,} written or left out "
                f"({self.clean:,} clean, {self.suppressed:,} suppressed, {self.invalid:,} "
                f"invalid, {self.deferred:,} deferred, {self.duplicates_dropped:,} duplicates "
                "left out)"
            )
        if sum(self.invalid_per_reason.values()) != self.invalid:
            raise SummaryError("internal error: invalid rows per reason do not add up")
        if any(count > self.suppressed for count in self.suppressed_per_list.values()):
            raise SummaryError("internal error: a list matched more rows than were suppressed")

    @property
    def written(self) -> int:
        """Rows written to the row files: clean, suppressed, invalid and deferred."""
        return self.clean + self.suppressed + self.invalid + self.deferred

    @property
    def balanced(self) -> bool:
        """Always true; spelled out in the JSON for readers who check."""
        return self.rows_in == self.written + self.duplicates_dropped

    @property
    def retried_batches(self) -> int:
        """Batches answered by another target than the one that first had them."""
        return sum(self.retried_on.values())

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole scrub."""
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        data = asdict(self)
        data["lists_checked"] = list(self.lists_checked)
        data["suppressed_per_list"] = dict(self.suppressed_per_list)
        data["invalid_per_reason"] = dict(self.invalid_per_reason)
        data["data_versions"] = dict(self.data_versions)
        data["first_data_versions"] = dict(self.first_data_versions)
        data["outputs"] = dict(self.outputs)
        data["retried_on"] = dict(self.retried_on)
        data["retried_batches"] = self.retried_batches
        data["failed_targets"] = dict(self.failed_targets)
        data["balanced"] = self.balanced
        data["seconds"] = round(self.seconds, 3)
        data["rows_per_second"] = round(self.rows_per_second)
        return data

    def to_json(self) -> str:
        """The summary as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def table(self) -> Table:
        """The summary as a rich table."""
        table = Table(title=f"scrub of {self.input}", title_justify="left", show_header=False)
        table.add_column("item")
        table.add_column("value", justify="right")
        versions = ", ".join(
            f"{source} {version}" for source, version in self.data_versions.items()
        )
        rows: list[tuple[str, str]] = [
            ("rows in", f"{self.rows_in:,}"),
            ("  clean (may dial)", f"{self.clean:,}"),
            ("  suppressed", f"{self.suppressed:,}"),
            ("  invalid", f"{self.invalid:,}"),
        ]
        if self.policy:
            rows += [
                ("  deferred (not yet)", f"{self.deferred:,}"),
                ("clean + suppressed + invalid + deferred", f"{self.written:,}"),
            ]
        else:
            rows.append(("clean + suppressed + invalid", f"{self.written:,}"))
        if self.duplicates_dropped:
            rows.append(("  duplicates left out (--dedupe)", f"{self.duplicates_dropped:,}"))
        rows += [
            (f"  on list {name}", f"{count:,}") for name, count in self.suppressed_per_list.items()
        ]
        rows += [
            (f"  invalid: {reason}", f"{count:,}")
            for reason, count in self.invalid_per_reason.items()
        ]
        rows += [
            ("duplicate rows", f"{self.duplicates:,}"),
            ("distinct numbers", f"{self.distinct_numbers:,}"),
            ("blank lines skipped", f"{self.blank_lines:,}"),
            ("phone column", f"{self.column} (by {self.column_detection})"),
            ("encoding", self.encoding),
            ("mode", self.mode),
        ]
        if self.policy:
            rows.append(("policy", f"{self.policy} version {self.policy_version}"))
            rows.append(("decided for", self.decided_at or "each server's now, per batch"))
        rows += [
            ("data version", versions + (" (STALE)" if self.stale else "")),
            ("seconds", f"{self.seconds:.2f} ({self.rows_per_second:,.0f} rows/s)"),
        ]
        if self.failed_targets or self.retried_on:
            places = ", ".join(
                f"{count:,} on {target}" for target, count in self.retried_on.items()
            )
            rows.append(
                (
                    "batches retried",
                    f"{self.retried_batches:,}" + (f" ({places})" if places else ""),
                )
            )
            rows.append(("targets failed", ", ".join(self.failed_targets) or "none"))
        if self.first_data_versions:
            moved = ", ".join(
                f"{source} from {version}" for source, version in self.first_data_versions.items()
            )
            rows.append(("data moved during the scrub", moved))
        if self.resumed_at_line:
            rows.append(("resumed at line", f"{self.resumed_at_line:,}"))
        if self.rechecked_lines:
            rows.append(("lines checked again (data changed)", f"{self.rechecked_lines:,}"))
        if self.failed_closed:
            rows.append(("failed closed", "yes: data too stale, every valid number suppressed"))
        for item, value in rows:
            table.add_row(item, value)
        return table

    def to_text(self) -> str:
        """The table as plain text, for the summary file."""
        buffer = io.StringIO()
        Console(file=buffer, width=100, color_system=None, force_terminal=False).print(self.table())
        return buffer.getvalue()
