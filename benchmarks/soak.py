"""The soak, longer: failover time, longest staleness and client errors under kill -9.

Runs :class:`tests.integration.soak_cluster.Soak` (three ``suppression serve``
replicas, a Redis primary and replica, three sentinels, continuous writes and
checks, SIGKILL of replicas and of the Redis primary) for ``--seconds`` per
run, ``--runs`` times with different seeds, prints a table and, with
``--record``, appends it to RESULTS.md. A run that loses an acknowledged write
or ends with a replica that disagrees with the log fails the script.

Usage: ``.venv/bin/python benchmarks/soak.py [--seconds 600] [--runs 1] [--seed 1] [--record]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the soak's harness lives with the tests that run it briefly

from _common import (  # noqa: E402
    append_results,
    load_average,
    machine_description,
    markdown_table,
    print_table,
)

from tests.integration.soak_cluster import Soak, SoakReport  # noqa: E402

HEADERS = [
    "Run",
    "seconds",
    "writes acked",
    "writes failed",
    "checks",
    "check errors",
    "replica kills (peer starts)",
    "Redis kills",
    "failover s (min-max)",
    "longest staleness ms",
    "longest lag s",
    "lost acked / wrong / final mismatches",
]


def row(label: str, report: SoakReport) -> list[str]:
    failovers = report.failover_seconds
    span = f"{min(failovers):.2f}-{max(failovers):.2f}" if failovers else "none"
    problems = (
        f"{len(report.missing_acknowledged)} / {len(report.wrong_answers)} / "
        f"{len(report.final_mismatches)}"
    )
    return [
        label,
        f"{report.seconds:.0f}",
        f"{report.acknowledged:,}",
        f"{report.write_errors:,}",
        f"{report.checks:,}",
        f"{report.check_errors:,}",
        f"{report.replica_kills} ({report.peer_starts})",
        str(report.redis_kills),
        span,
        f"{report.longest_staleness_ms:,}",
        f"{report.longest_lag_seconds:.2f}",
        problems,
    ]


def failed(report: SoakReport) -> bool:
    return bool(
        report.missing_acknowledged
        or report.wrong_answers
        or report.final_mismatches
        or report.harness_errors
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="chaos time per run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--keep", type=Path, help="keep every process's data and log here")
    args = parser.parse_args(argv)
    before = load_average()
    rows = []
    reports = []
    for run in range(args.runs):
        if args.keep is not None:
            directory = args.keep / f"run-{run + 1}"
            report = Soak(directory, seconds=args.seconds, seed=args.seed + run).run()
        else:
            with tempfile.TemporaryDirectory(prefix="soak-") as temporary:
                report = Soak(Path(temporary), seconds=args.seconds, seed=args.seed + run).run()
        reports.append(report)
        rows.append(row(f"{run + 1} (seed {args.seed + run})", report))
        for problem in [
            *report.missing_acknowledged,
            *report.wrong_answers[:20],
            *report.final_mismatches[:20],
            *report.unflagged_lags[:20],
            *report.harness_errors,
        ]:
            print(f"run {run + 1}: {problem}")
        print(f"run {run + 1}: longest lag: {report.longest_lag or 'none'}")
    print_table(f"Soak, {args.seconds:.0f} s per run", HEADERS, rows)
    after = load_average()
    if args.record:
        failovers = [s for r in reports for s in r.failover_seconds]
        verdict = (
            "**failed**: an acknowledged write was lost or a replica disagreed with the log"
            if any(failed(r) for r in reports)
            else "**met**: no acknowledged write lost, every replica agreed with the log at "
            "the end, no answer contradicted data that included the write"
        )
        body = "\n".join(
            [
                markdown_table(HEADERS, rows),
                "",
                f"- Verdict: {verdict}.",
                f"- Failover (Redis primary SIGKILL to the next acknowledged write): "
                f"{min(failovers):.2f}-{max(failovers):.2f} s over {len(failovers)} failovers "
                "(sentinel down-after-milliseconds 1000)."
                if failovers
                else "- No failover completed.",
                "- Client errors are UNAVAILABLE answers while a replica restarts or Redis has "
                "no primary; clients retry them. Check errors also count calls to a killed "
                "replica's port.",
                f"- Load average before: {before}; after: {after}.",
            ]
        )
        append_results(
            f"soak.py, {args.runs} run(s) of {args.seconds:.0f} s",
            machine_description(["redis", "grpcio"]),
            body,
        )
    return 1 if any(failed(r) for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
