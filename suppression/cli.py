"""The ``suppression`` command: serve, check, scrub."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from suppression.cliparse import CommandParser, add_version
from suppression.errors import ConfigError, SuppressionError
from suppression.explaincli import add_commands
from suppression.logs import configure_logging, report_error, requested_format
from suppression.settings import Settings, add_arguments, settings_from_args

# Each command imports what it runs when it runs: `scrub` never loads grpc or the
# server, and start-up is part of every scrub's time.
if TYPE_CHECKING:
    import grpc

    from suppression.checker import CheckOutcome
    from suppression.client import CheckResult, PolicyArrays
    from suppression.policy.batch import PolicyAnswer, PolicyRequest

__all__ = ["main"]

logger = logging.getLogger(__name__)

EXIT_ALL_ALLOWED = 0
EXIT_SOME_BLOCKED = 1
EXIT_ERROR = 2
PROG = "suppression"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = CommandParser(
        prog=PROG,
        description="Pre-dial suppression service: may this number be dialed? "
        "Exit code 2, with one line on stderr, on any error.",
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="serve Check, CheckStream and GetStatus over gRPC"
    )
    add_arguments(serve_parser, "serve")
    check_parser = commands.add_parser(
        "check",
        help="check numbers against a running server (--target) or a local --data-dir",
        description="Prints one row per number. Exit code 0: every number may be dialed; "
        "1: some are SUPPRESSED or INVALID; 2: error.",
    )
    check_parser.add_argument("numbers", nargs="+", metavar="NUMBER", help="numbers, any format")
    add_arguments(check_parser, "check")
    scrub_parser = commands.add_parser(
        "scrub",
        help="clean a CSV/TSV lead file: clean, suppressed and invalid files plus a summary",
        description="Writes INPUT's rows into NAME.clean, NAME.suppressed (with the lists "
        "that matched) and NAME.invalid (with the reason and line number), plus "
        "NAME.summary.json and NAME.summary.txt, beside INPUT. Asks --target server(s), or "
        "without one checks --data-dir/--list in this process. Under a pre-dial policy "
        "(--policy-file locally; --policy or --decide-at with --target) every row is decided "
        "for one instant and rows not to dial yet go to NAME.deferred, with their "
        "earliest_dial_utc. Exit code 0: done; 2: error.",
    )
    scrub_parser.add_argument("input", metavar="INPUT", help="CSV or TSV file, plain or .gz")
    add_arguments(scrub_parser, "scrub")
    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``suppression`` console script.

    Every error, a usage error included, is one line on stderr (a JSON record
    with ``--log-format json``) and exit code 2; ``check`` keeps 1 for "some
    numbers may not be dialed".
    """
    raw = sys.argv[1:] if argv is None else list(argv)
    configure_logging("INFO", requested_format(raw, os.environ))
    try:
        args = build_parser().parse_args(raw)
        settings = settings_from_args(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            from suppression.server import serve

            return serve(settings)
        if args.command == "scrub":
            return _scrub(settings, args.input)
        if args.command == "explain":
            from suppression.explaincli import run_explain

            return run_explain(settings, args.number)
        if args.command == "evidence":
            from suppression.explaincli import run_evidence

            return run_evidence(settings, args.number)
        return _check(settings, args.numbers)
    except SuppressionError as exc:
        report_error(PROG, str(exc))
    except OSError as exc:
        report_error(PROG, str(exc))
    except KeyboardInterrupt:
        report_error(PROG, "interrupted")
    except Exception as exc:
        # Only a command that talked to a server has imported grpc, and only it gets RpcError.
        grpc_module = sys.modules.get("grpc")
        if grpc_module is None or not isinstance(exc, grpc_module.RpcError):
            raise
        report_error(PROG, _rpc_message(exc))
    return EXIT_ERROR


_RPC_HINTS = {
    "UNAVAILABLE": "is `suppression serve` running and reachable at --target?",
    "DEADLINE_EXCEEDED": "the server did not answer within --timeout seconds",
}


def _rpc_message(exc: grpc.RpcError) -> str:
    code: grpc.StatusCode = exc.code()
    details: str = exc.details()
    hint = _RPC_HINTS.get(code.name)
    return f"server answered {code.name}: {details}" + (f" ({hint})" if hint else "")


def _scrub(settings: Settings, source: str) -> int:
    from rich.console import Console

    from suppression.scrub import ScrubOptions, run_scrub

    options = ScrubOptions(
        region=settings.region,
        column=settings.column,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        output_dir=settings.output_dir,
        lists=settings.lists,
        targets=settings.target,
        timeout=settings.timeout,
        batch_size=settings.batch_size,
        processes=settings.processes,
        parse_cache_size=settings.parse_cache_size,
        data_dir=settings.data_dir,
        list_files=settings.list,
        snapshot_key_file=settings.snapshot_key_file,
        chunk_rows=settings.chunk_rows,
        resume=settings.resume,
        no_header=settings.no_header,
        compress=settings.compress,
        dedupe=settings.dedupe,
        as_of=settings.as_of,
        archive_dir=settings.archive_dir,
        policy_file=settings.policy_file,
        dated_lists=settings.dated_list,
        policy=settings.policy,
        decide_at=settings.decide_at,
    )
    summary = run_scrub(options, Path(source))
    Console().print(summary.table())
    return EXIT_ALL_ALLOWED


def _check(settings: Settings, numbers: Sequence[str]) -> int:
    from suppression.checker import Verdict
    from suppression.datasource import DataSource
    from suppression.e164 import Normalizer, validate_region
    from suppression.policy.store import open_store
    from suppression.policyargs import policy_request_of
    from suppression.replica import Replica

    try:
        region = validate_region(settings.region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    policy_request = policy_request_of(settings)
    if settings.target:
        if settings.policy_file is not None or settings.dated_list:
            raise ConfigError(
                "--policy-file and --dated-list are read by the server (`suppression serve "
                "--policy-file`); with --target it decides under its own file: name one of its "
                "policies with --policy, or drop --target to decide locally"
            )
        result = _check_remote(settings, numbers, region, policy_request)
        verdicts: list[int] = [int(v) for v in result.verdicts]
        rows = _rows(
            numbers,
            verdicts,
            result.masks,
            result.list_names,
            dict(result.invalid_reasons),
            result.normalized,
        )
        if result.policy_arrays is not None:
            _add_policy(rows, result.policy_arrays)
        version, stale = result.version, result.stale
        policy_version = result.policy_version
    else:
        if settings.data_dir is None and not settings.list:
            raise ConfigError(
                "check needs --target HOST[:PORT] to ask a running server, or --data-dir DIR "
                "or --list NAME=FILE to check locally"
            )
        policies = open_store(settings.policy_file, settings.dated_list, settings.region)
        replica = Replica(DataSource.from_settings(settings), policies=policies)
        replica.start()
        outcome, _ = replica.check(
            (), numbers, region, settings.lists, Normalizer(), policy=policy_request
        )
        verdicts = outcome.verdicts
        rows = _outcome_rows(numbers, outcome)
        version, stale = str(outcome.version), False
        policy_version = outcome.policy.version if outcome.policy is not None else ""
    if settings.output == "json":
        document: dict[str, object] = {"version": version, "stale": stale}
        if policy_version:
            document["policy_version"] = policy_version
        print(json.dumps({**document, "results": rows}, indent=2))
    else:
        source = settings.target[0] if settings.target else "local"
        _print_table(rows, version, stale, source, policy_version)
    blocked = any(v != Verdict.ALLOWED for v in verdicts)
    return EXIT_SOME_BLOCKED if blocked else EXIT_ALL_ALLOWED


def _check_remote(
    settings: Settings, numbers: Sequence[str], region: str, policy: PolicyRequest
) -> CheckResult:
    """Ask the --target servers: retried on the next target, batches split to max_batch.

    The policy options travel as the request's policy fields; the server decides.
    """
    from suppression.client import ClientConfig, SuppressionClient

    config = ClientConfig(
        targets=tuple(settings.target),
        timeout=settings.timeout,
        lists=tuple(settings.lists),
        region=region,
    )
    with SuppressionClient(config) as client:
        return client.check(
            numbers=numbers,
            policy=policy.name,
            decide_at=policy.at_ms or None,
            consent_day=policy.consent_day or None,
            calling_line=policy.calling_line,
        )


def _rows(
    numbers: Sequence[str],
    verdicts: Sequence[int],
    masks: Sequence[int],
    list_names: Sequence[str],
    reasons: dict[int, int],
    normalized: Sequence[int],
) -> list[dict[str, object]]:
    from suppression.checker import Verdict
    from suppression.e164 import InvalidReason

    rows: list[dict[str, object]] = []
    for index, text in enumerate(numbers):
        verdict = Verdict(verdicts[index])
        matched = [name for bit, name in enumerate(list_names) if masks[index] >> bit & 1]
        reason = InvalidReason(reasons[index]).name if index in reasons else ""
        e164 = f"+{normalized[index]}" if normalized[index] else ""
        rows.append(
            {
                "input": text,
                "e164": e164,
                "verdict": verdict.name,
                "lists": matched,
                "reason": reason,
            }
        )
    return rows


def _outcome_rows(numbers: Sequence[str], outcome: CheckOutcome) -> list[dict[str, object]]:
    rows = _rows(
        numbers,
        outcome.verdicts,
        outcome.masks,
        outcome.list_names,
        outcome.invalid_reasons,
        outcome.normalized,
    )
    if outcome.policy is not None:
        _add_policy(rows, outcome.policy)
    return rows


def _add_policy(rows: list[dict[str, object]], answer: PolicyAnswer | PolicyArrays) -> None:
    """Each row's policy, rules, exemptions and earliest time: one format, local or remote."""
    for index, row in enumerate(rows):
        row["policy"] = answer.policy
        row["rules"] = _names(answer.rules[index], answer.rule_names)
        row["exemptions"] = _names(answer.exemptions[index], answer.exemption_names)
        earliest = answer.earliest_ms[index]
        row["earliest"] = (
            dt.datetime.fromtimestamp(earliest / 1000, dt.UTC).isoformat() if earliest else ""
        )


def _names(mask: int, names: Sequence[str]) -> list[str]:
    return [name for bit, name in enumerate(names) if mask >> bit & 1]


_STYLES = {"ALLOWED": "green", "SUPPRESSED": "bold red", "INVALID": "yellow", "DEFERRED": "cyan"}


def _print_table(
    rows: list[dict[str, object]], version: str, stale: bool, source: str, policy_version: str = ""
) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"data version {version} from {source}" + (" (STALE)" if stale else "")
    if rows and "policy" in rows[0]:
        title += f", policy {rows[0]['policy']} version {policy_version}"
    table = Table(title=title)
    for column in ("Number", "E.164", "Verdict", "Lists / reason"):
        table.add_column(column)
    for row in rows:
        verdict = str(row["verdict"])
        matched = cast(list[str], row["lists"])
        detail = ", ".join(matched) if matched else str(row["reason"]).lower()
        if "rules" in row:
            rules = cast(list[str], row["rules"])
            detail = ", ".join(rules) or detail
            if row["earliest"]:
                detail += f" until {row['earliest']}"
            if row["exemptions"]:
                detail += f" (exempt: {', '.join(cast(list[str], row['exemptions']))})"
        table.add_row(
            str(row["input"]), str(row["e164"]), f"[{_STYLES[verdict]}]{verdict}[/]", detail
        )
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
