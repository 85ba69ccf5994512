"""``suppression explain`` and ``suppression evidence``: one number at one point in time.

Both read the change archive on this machine (``--archive-dir``, by default
``archive/`` in ``--data-dir``): they need no running server, and read while
the archiver writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suppression.errors import ConfigError
from suppression.settings import Settings, add_arguments

# Every ``suppression`` command builds this parser; what explain and evidence run is
# imported when they run, so the other commands do not load the archive or the policies.
if TYPE_CHECKING:
    from suppression.archive import ArchiveReader
    from suppression.explain.model import Explanation
    from suppression.lists import Version

__all__ = ["add_commands", "run_evidence", "run_explain"]

EXIT_OK = 0


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``explain`` and ``evidence`` to the ``suppression`` command."""
    explain_parser = commands.add_parser(
        "explain",
        help="what every list said about one number at a version or a time, and why",
        description="Reads the change archive (--archive-dir, or archive/ in --data-dir) and "
        "prints, for every list, whether the number was on it, since which change, and that "
        "number's changes with source, actor and evidence. A point the archive cannot answer "
        "for is an error, never a guess. Exit code 0: answered; 2: error.",
    )
    explain_parser.add_argument("number", metavar="NUMBER", help="the number, any format")
    _add_point_aliases(explain_parser)
    explain_parser.add_argument(
        "--json", dest="output", action="store_const", const="json", help="same as --output json"
    )
    add_arguments(explain_parser, "explain")
    evidence_parser = commands.add_parser(
        "evidence",
        help="write a complaint report for one number at one point in time (JSON and Markdown)",
        description="Writes evidence-NUMBER-VERSION.json and .md into --out DIR, each "
        "atomically: the number (masked unless --show-number), the version, every list, the "
        "history with provenance, the verdict, and the SHA-256 of the archive segments and "
        "checkpoint it came from. Exit code 0: written; 2: error.",
    )
    evidence_parser.add_argument("number", metavar="NUMBER", help="the number, any format")
    _add_point_aliases(evidence_parser)
    add_arguments(evidence_parser, "evidence")


def _add_point_aliases(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        dest="at_version",
        metavar="VERSION",
        default=None,
        help="same as --at-version",
    )


def _question(settings: Settings, text: str) -> tuple[ArchiveReader, int, Version, int | None]:
    from suppression.archive import ArchiveReader
    from suppression.e164 import validate_region
    from suppression.explain.model import version_at_time
    from suppression.explain.request import parse_time, single_number
    from suppression.lists import Version

    directory = settings.archive_dir
    if directory is None and settings.data_dir is not None:
        directory = settings.data_dir / "archive"
    if directory is None:
        raise ConfigError("give --archive-dir DIR, or --data-dir DIR holding archive/")
    if not directory.is_dir():
        raise ConfigError(f"no change archive in {directory}: give --archive-dir or --data-dir")
    region = validate_region(settings.region) if settings.region else ""
    stripped = text.strip()
    # Bare digits are the E.164 integer; anything else is parsed like check's input.
    if stripped.isascii() and stripped.isdigit():
        number = single_number(int(stripped), "", region)
    else:
        number = single_number(0, stripped, region)
    if bool(settings.at) == bool(settings.at_version):
        raise ConfigError("give exactly one of --at TIME and --version VERSION")
    if settings.at_version:
        return ArchiveReader(directory), number, Version.parse(settings.at_version), None
    at_ms = parse_time(settings.at)
    return ArchiveReader(directory), number, version_at_time(at_ms), at_ms


def _explain(settings: Settings, text: str) -> tuple[ArchiveReader, Explanation]:
    from suppression.datasource import snapshot_key
    from suppression.explain.model import explain
    from suppression.policy.store import open_store
    from suppression.policyargs import policy_request_of

    reader, number, at, at_ms = _question(settings, text)
    key = snapshot_key(settings.snapshot_key_file)
    explanation = explain(reader, number, at, key=key, at_time_ms=at_ms)
    store = open_store(settings.policy_file, settings.dated_list, settings.region)
    if store is None:
        return reader, explanation
    # The policy's verdict on the lists as they stood then, as a server's Explain gives it.
    from suppression.archive.asof import view_as_of
    from suppression.explain.policy import explain_policy

    past = view_as_of(reader, at, snapshots=settings.data_dir, key=key)
    decided = explain_policy(
        past,
        store.served,
        number,
        at_ms if at_ms is not None else at.ms,
        policy_request_of(settings),
    )
    return reader, dataclasses.replace(explanation, policy=decided)


def run_explain(settings: Settings, text: str) -> int:
    """Print the explanation as a table, or as JSON with ``--output json``."""
    from rich.console import Console
    from rich.table import Table

    from suppression.explain.report import document

    _, explanation = _explain(settings, text)
    doc = document(explanation, show_number=settings.show_number)
    if settings.output == "json":
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return EXIT_OK
    console = Console() if sys.stdout.isatty() else Console(width=160)
    at = doc["at"]
    point = at["time"] or f"version {at['version']}"
    table = Table(title=f"{doc['number']} at {point}: {doc['verdict']}", title_justify="left")
    for column in ("List", "Kind", "On it", "Since", "Source", "Actor", "Evidence", "Changes"):
        table.add_column(column)
    for item in doc["lists"]:
        since = item["since"] or {}
        table.add_row(
            item["name"],
            item["kind"],
            "yes" if item["on_list"] else "no",
            since.get("version") or item["since_note"],
            since.get("source", ""),
            since.get("actor", ""),
            since.get("evidence", ""),
            str(len(item["history"])),
        )
    console.print(table)
    console.print(f"Verdict basis: {doc['verdict_basis']}")
    decided = doc["policy"]
    if decided is not None:
        console.print(
            f"Policy {decided['policy']!r} (version {decided['policy_version']}) at "
            f"{decided['decided_at']}: [bold]{decided['verdict']}[/]"
            + (f"; rules: {', '.join(decided['rules'])}" if decided["rules"] else "")
            + (f"; exemptions: {', '.join(decided['exemptions'])}" if decided["exemptions"] else "")
            + (f"; earliest dial time {decided['earliest']}" if decided["earliest"] else "")
        )
        console.print(f"  ({decided['note']})")
    base = doc["base"]
    console.print(
        f"Rebuilt from {base['checkpoint'] or 'empty lists'} at {base['version']}; archive "
        f"{doc['archive']['begins']} to {doc['archive']['ends']}; "
        f"{len(doc['archive']['segments'])} segment(s) read"
    )
    for report in doc["archive"]["damage"]:
        console.print(f"[bold red]Archive damage:[/] {report}")
    return EXIT_OK


def run_evidence(settings: Settings, text: str) -> int:
    """Write the report files and print where they are."""
    from suppression.explain.report import verify_segments, write_report

    if settings.out is None:
        raise ConfigError("give --out DIR: where the report files go")
    reader, explanation = _explain(settings, text)
    verify_segments(reader, explanation)
    files = write_report(explanation, Path(settings.out), show_number=settings.show_number)
    print(files.json_path)
    print(files.markdown_path)
    return EXIT_OK
