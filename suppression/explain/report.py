"""The complaint report: an Explanation as a JSON document and a readable Markdown page.

Both files are written atomically (a temporary file in the same directory,
fsync, rename), so a reader never finds half a report. The number is masked
everywhere, file names included, unless the caller asks for it in full. The
report names the archive segments it was read from with their SHA-256,
recomputed from the files when the report is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suppression.archive import ArchiveReader
from suppression.archive.index import sha256_of
from suppression.e164 import mask_number
from suppression.errors import ArchiveError
from suppression.explain.model import ChangeRecord, Explanation, PolicyExplanation
from suppression.version import build_version

__all__ = ["ReportFiles", "document", "markdown", "verify_segments", "write_report"]

REPORT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where a report was written."""

    json_path: Path
    markdown_path: Path


def shown_number(number: int, show_number: bool) -> str:
    """The number as the report shows it: masked unless asked for in full."""
    return f"+{number}" if show_number else mask_number(number)


def document(explanation: Explanation, *, show_number: bool = False) -> dict[str, Any]:
    """The explanation as JSON-ready values; the number masked unless ``show_number``."""
    base = explanation.base
    return {
        "format": REPORT_FORMAT,
        "number": shown_number(explanation.number, show_number),
        "number_masked": not show_number,
        "at": {
            "version": str(explanation.at),
            "time": _iso(explanation.at_time_ms) if explanation.at_time_ms is not None else None,
        },
        "verdict": explanation.verdict,
        "verdict_basis": explanation.verdict_basis,
        "policy": _policy(explanation.policy),
        "lists": [
            {
                "name": answer.name,
                "kind": answer.kind,
                "on_list": answer.on_list,
                "since": _change(answer.since) if answer.since is not None else None,
                "since_note": answer.since_note,
                "history": [_change(change) for change in answer.history],
            }
            for answer in explanation.lists
        ],
        "base": {
            "version": str(base.version),
            "checkpoint": base.checkpoint,
            "sha256": base.sha256,
            "reason": base.reason,
        },
        "archive": {
            "begins": str(explanation.archive_begins or ""),
            "ends": str(explanation.archive_ends or ""),
            "segments": [
                {"name": s.name, "bytes": s.bytes, "sha256": s.sha256} for s in explanation.segments
            ],
            "damage": list(explanation.damage),
        },
    }


def _policy(decided: PolicyExplanation | None) -> dict[str, Any] | None:
    if decided is None:
        return None
    return {
        "policy": decided.policy,
        "policy_version": decided.policy_version,
        "verdict": decided.verdict,
        "rules": list(decided.rules),
        "exemptions": list(decided.exemptions),
        "earliest": _iso(decided.earliest_ms) if decided.earliest_ms else None,
        "decided_at": _iso(decided.decided_at_ms),
        "note": decided.note,
    }


def _change(change: ChangeRecord) -> dict[str, Any]:
    return {
        "version": change.version,
        "op": change.op,
        "list": change.list_name,
        "source": change.source,
        "actor": change.actor,
        "evidence": change.evidence,
        "time": _iso(change.timestamp_ms),
        "producer": change.producer,
        "numbers_in_change": change.numbers_in_change,
        "block": change.block,
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def verify_segments(reader: ArchiveReader, explanation: Explanation) -> None:
    """Recompute the SHA-256 of every segment the answer was read from.

    Raises:
        ArchiveError: a segment's bytes no longer match the checksum recorded
            when it was read or indexed (changed since).
    """
    for segment in explanation.segments:
        path = reader.directory / segment.name
        digest = sha256_of(path, segment.bytes)
        if digest != segment.sha256:
            raise ArchiveError(
                f"archive segment {path} no longer matches its checksum over its first "
                f"{segment.bytes:,} bytes ({digest[:12]}... against {segment.sha256[:12]}...): "
                "it was changed after it was written; the report would not be evidence"
            )


def _policy_lines(decided: dict[str, Any] | None) -> list[str]:
    if decided is None:
        return []
    detail = [f"policy `{decided['policy']}` version `{decided['policy_version']}`"]
    if decided["rules"]:
        detail.append("rules: " + ", ".join(f"`{rule}`" for rule in decided["rules"]))
    if decided["exemptions"]:
        detail.append("exemptions: " + ", ".join(f"`{name}`" for name in decided["exemptions"]))
    if decided["earliest"]:
        detail.append(f"earliest dial time {decided['earliest']}")
    return [
        f"- **Pre-dial policy then ({decided['decided_at']}):** **{decided['verdict']}** "
        f"({'; '.join(detail)}). {decided['note']}.",
    ]


def markdown(doc: dict[str, Any], generated_at: str) -> str:
    """A page a compliance officer can read and attach."""
    at = doc["at"]
    point = f"version `{at['version']}`" + (f" (time {at['time']})" if at["time"] else "")
    lines = [
        f"# Suppression evidence for {doc['number']}",
        "",
        f"- **Point in time:** {point}",
        f"- **Verdict then:** **{doc['verdict']}** ({doc['verdict_basis']})",
        *_policy_lines(doc["policy"]),
        f"- **Rebuilt from:** checkpoint `{doc['base']['checkpoint'] or 'empty lists'}` at "
        f"version `{doc['base']['version']}`, SHA-256 `{doc['base']['sha256'] or '-'}`",
        f"- **Archive:** from `{doc['archive']['begins']}` to `{doc['archive']['ends']}`",
        f"- **Generated:** {generated_at} by suppression {build_version()}",
        "",
        "## Lists",
        "",
        "| List | Kind | On the list | Since | Source | Actor | Evidence |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in doc["lists"]:
        since = item["since"] or {}
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    item["name"],
                    item["kind"],
                    "yes" if item["on_list"] else "no",
                    since.get("version") or item["since_note"],
                    since.get("source", ""),
                    since.get("actor", ""),
                    since.get("evidence", ""),
                )
            )
            + " |"
        )
    lines += ["", "## History", ""]
    for item in doc["lists"]:
        lines += [f"### {_cell(item['name'])}", "", item["since_note"], ""]
        if not item["history"]:
            lines += ["No archived change of this number on this list.", ""]
            continue
        lines += [
            "| Version | Time | Operation | Numbers in the change | Source | Actor | Evidence |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for change in item["history"]:
            what = "a block of" if change["block"] else ""
            lines.append(
                "| "
                + " | ".join(
                    _cell(value)
                    for value in (
                        change["version"],
                        change["time"],
                        change["op"],
                        f"{what} {change['numbers_in_change']:,}".strip(),
                        change["source"],
                        change["actor"],
                        change["evidence"],
                    )
                )
                + " |"
            )
        lines.append("")
    lines += [
        "## Archive segments read",
        "",
        "| Segment | Bytes | SHA-256 |",
        "| --- | --- | --- |",
    ]
    for segment in doc["archive"]["segments"]:
        lines.append(f"| `{segment['name']}` | {segment['bytes']:,} | `{segment['sha256']}` |")
    if doc["archive"]["damage"]:
        lines += ["", "## Damage found in the archive", ""]
        lines += [f"- {_cell(report)}" for report in doc["archive"]["damage"]]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    """Text safe in a Markdown table cell."""
    return re.sub(r"[\r\n]+", " ", str(value)).replace("|", "\\|")


def write_report(
    explanation: Explanation, directory: Path, *, show_number: bool = False
) -> ReportFiles:
    """Write ``evidence-<number>-<point>.json`` and ``.md`` into ``directory``, atomically.

    The number in the names is masked like everywhere else (``1212x123``) unless
    ``show_number``; the point is ``time-<ms>`` or ``version-<version>``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    doc = document(explanation, show_number=show_number)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    doc["generated_at"] = generated_at
    doc["generator"] = f"suppression {build_version()}"
    label = re.sub(r"[^0-9A-Za-z]+", "x", doc["number"]).strip("x")
    point = (
        f"time-{explanation.at_time_ms}"
        if explanation.at_time_ms is not None
        else f"version-{explanation.at}"
    )
    stem = f"evidence-{label}-{point}"
    json_path = directory / f"{stem}.json"
    markdown_path = directory / f"{stem}.md"
    _write_atomically(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    _write_atomically(markdown_path, markdown(doc, generated_at))
    return ReportFiles(json_path, markdown_path)


def _write_atomically(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
