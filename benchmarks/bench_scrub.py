"""Scrub benchmark: ``suppression scrub`` on a generated lead file, local and remote, side by side.

It generates a data set (a registry-shaped national list and an opt-out list,
written as a snapshot) and a lead file of ``--rows`` rows whose phone column
mixes formats the way CRM exports do:

- 40% canonical E.164 (``+12125550123``), the fast path;
- 30% US national with punctuation (``(212) 555-0123``), 4% with dots
  (``212.555.0123``), 4% with the country code (``1-212-555-0123``);
- 4% international with spaces (``+86 138 0013 8000``, ``+44 20 7946 0000``)
  and 4% ``+1 212 555 0123``;
- 10% repeats of an earlier row's phone string;
- 4% invalid: empty, ``n/a``, too short, unknown country code, words.

About 20% of the valid numbers are drawn from the lists, so they come back
SUPPRESSED. Then it runs the real command twice, as a subprocess, timing the
wall clock of each: local mode (``--data-dir``, in-process checking with a
process pool), and remote mode against ``suppression serve --workers N`` on
the same machine. The two summaries must agree row for row.

``--parse-share 0.3`` replaces 30% of the rows with forms that only
``phonenumbers.parse`` reads (``011 44 20 ...``, ``+44 (0)20 ...``, an
extension), to show the worst case: there the worker processes carry the load.

``--policy`` instead compares two local scrubs in one run, runs alternating:
on the lists alone, and under a pre-dial policy (``--policy-file``: the two
lists, a consent list lifting the registry, an 08:00-21:00 calling window, a
cap of 3 attempts a day per number), every row decided for one instant.

Usage: ``python benchmarks/bench_scrub.py [--rows N] [--runs N] [--parse-share F] [--policy]
[--no-append]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _common import (
    RESULTS_PATH,
    append_results,
    free_port,
    load_average,
    machine_description,
    markdown_table,
    print_table,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pyroaring import BitMap64

from suppression.demo import registry_shaped
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("grpcio", "protobuf", "phonenumbers", "pyroaring", "numpy")
TARGET_LOCAL_SECONDS = 10.0
TARGET_REMOTE_SHARE = 0.70
TARGET_ROWS = 1_000_000
FIRST_NAMES = ("Ann", "Bo", "Chen", "Dara", "Eli", "Fang", "Gus", "Hui", "Ivy", "Jon")
CITIES = ("New York", "Washington", "Chicago", "Austin", "Beijing", "Shanghai", "Denver")


def build_data(directory: Path, registry_size: int, seed: int) -> np.ndarray[Any, Any]:
    """Write a snapshot with a national registry and an opt-out list; return all listed numbers."""
    national = registry_shaped(registry_size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    optouts = rng.choice(national, size=max(1, registry_size // 100), replace=False)
    extra = rng.integers(12_000_000_000, 19_999_999_999, size=registry_size // 200, dtype=np.uint64)
    internal = np.concatenate([optouts, extra])
    lists = SuppressionLists(
        {"national": BitMap64(national), "internal": BitMap64(internal)},
        [ListInfo("national", ListKind.REGISTRY), ListInfo("internal", ListKind.OPT_OUT)],
        Version(1_700_000_000_000, 0),
    )
    write_snapshot(directory, lists.view)
    return np.concatenate([national, extra])


def _us_formats(number: int, style: int) -> str:
    digits = str(number)[1:]
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    if style == 0:
        return f"({area}) {exchange}-{line}"
    if style == 1:
        return f"{area}.{exchange}.{line}"
    return f"1-{area}-{exchange}-{line}"


def build_leads(
    path: Path, rows: int, listed: np.ndarray[Any, Any], seed: int, parse_share: float = 0.0
) -> None:
    """Write the lead file (see the module docstring for its mix).

    ``parse_share`` of the rows, chosen at random, instead hold forms that only
    ``phonenumbers.parse`` can read (``011 44 20 ...``, ``+44 (0)20 ...``,
    ``1 (212) 555-0123 x7``), to measure the worst case.
    """
    rng = np.random.default_rng(seed)
    hard = rng.random(rows) < parse_share
    kinds = rng.choice(8, size=rows, p=[0.40, 0.30, 0.04, 0.04, 0.04, 0.10, 0.04, 0.04])
    fresh_us = rng.integers(12_002_000_000, 19_899_999_999, size=rows, dtype=np.uint64)
    from_lists = rng.random(rows) < 0.2
    fresh_us[from_lists] = rng.choice(listed, size=int(from_lists.sum()))
    cn = rng.integers(13_000_000_000, 18_999_999_999, size=rows, dtype=np.int64)
    bad = ("", "n/a", "12345", "+999 123 4567", "call after 5pm", "0", "+1 212 555")
    phones: list[str] = []
    for index in range(rows):
        kind = kinds[index]
        number = int(fresh_us[index])
        if kind == 0:
            phone = f"+{number}"
        elif kind == 1:
            phone = _us_formats(number, 0)
        elif kind in (2, 3):
            phone = _us_formats(number, int(kind) - 1)
        elif kind == 4:
            c = str(int(cn[index]))
            phone = f"+86 {c[:3]} {c[3:7]} {c[7:]}" if index % 2 else f"+44 20 {c[3:7]} {c[7:]}"
        elif kind == 5 and phones:
            phone = phones[int(rng.integers(0, len(phones)))]
        elif kind == 6:
            phone = bad[index % len(bad)]
        else:
            phone = f"+1 {str(number)[1:4]} {str(number)[4:7]} {str(number)[7:]}"
        if hard[index]:
            digits = str(number)
            phone = (
                f"011 44 20 {digits[4:8]} {digits[8:]}",
                f"+44 (0)20 {digits[4:8]} {digits[8:]}",
                f"1 ({digits[1:4]}) {digits[4:7]}-{digits[7:]} x{index % 100}",
            )[index % 3]
        phones.append(phone)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id,first_name,email,phone,city,notes\n")
        for index, phone in enumerate(phones):
            name = FIRST_NAMES[index % len(FIRST_NAMES)]
            city = CITIES[index % len(CITIES)]
            quoted = f'"{phone}"' if "," in phone else phone
            note = '"called twice, no answer"' if index % 7 == 0 else ""
            out.write(f"{index},{name},{name.lower()}{index}@example.com,{quoted},{city},{note}\n")


def _wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the server exited before serving")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"the server did not serve within {timeout} s")


def run_scrub(leads: Path, out: Path, *options: str) -> tuple[float, dict[str, Any]]:
    """Run the real command; return its wall-clock seconds and its summary."""
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "suppression.cli", "scrub", str(leads), "--region", "US"]
    command += ["--output-dir", str(out), "--log-level", "WARNING", *options]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    seconds = time.perf_counter() - started
    summary = json.loads((out / f"{leads.name.split('.')[0]}.summary.json").read_text())
    return seconds, summary


def run_remote(leads: Path, out: Path, data: Path, workers: int) -> tuple[float, dict[str, Any]]:
    """Start ``suppression serve --workers N`` on a free port and scrub against it."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "suppression.cli", "serve", "--data-dir", str(data)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    command += ["--workers", str(workers), "--log-level", "WARNING"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    server = subprocess.Popen(command, env=env, cwd=REPO)
    try:
        _wait_serving(target, server)
        return run_scrub(leads, out, "--target", target)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


POLICY = """\
version = "bench"
default = "campaign"

[lists]
national = "registry"
internal = "opt_out"
consent = "exemption"

[policies.campaign]
suppress = ["national", "internal"]

[[policies.campaign.exemptions]]
list = "consent"
lifts = ["national"]

[policies.campaign.window]
start = "08:00"
end = "21:00"

[[policies.campaign.caps]]
per = "number"
max = 3
hours = 24
"""
POLICY_AT = "2026-06-15T19:00:00Z"
"""15:00 in New York, 09:00 in Hawaii: US rows inside the window, Chinese ones (03:00) deferred."""


def compare_policy(args: argparse.Namespace, root: Path, data: Path, leads: Path) -> int:
    """Local scrubs on the lists alone and under a policy, alternating; print and record."""
    consent = root / "consent.txt"
    rng = np.random.default_rng(args.seed + 2)
    national = registry_shaped(args.registry_size, seed=args.seed)
    chosen = rng.choice(national, size=max(1, len(national) // 100), replace=False)
    consent.write_text("".join(f"+{int(n)}\n" for n in chosen))
    policy_file = root / "policies.toml"
    policy_file.write_text(POLICY)
    plain_args = ["--data-dir", str(data)]
    policy_args = [*plain_args, "--list", f"consent:campaign={consent}"]
    policy_args += ["--policy-file", str(policy_file), "--decide-at", POLICY_AT]
    load_before = load_average()
    plain_runs: list[tuple[float, dict[str, Any]]] = []
    policy_runs: list[tuple[float, dict[str, Any]]] = []
    for _ in range(args.runs):
        plain_runs.append(run_scrub(leads, root / "plain", *plain_args))
        policy_runs.append(run_scrub(leads, root / "policy", *policy_args))
    load_after = load_average()
    plain = min(plain_runs, key=lambda result: result[0])
    under = min(policy_runs, key=lambda result: result[0])
    ratios = [p[0] / u[0] for p, u in zip(plain_runs, policy_runs, strict=True)]
    headers = ["mode", "seconds (best)", "rows/s", "speed vs lists alone"]
    rows = [
        ["local, lists alone", f"{plain[0]:.2f}", f"{args.rows / plain[0]:,.0f}", "100%"],
        [
            "local, under a policy",
            f"{under[0]:.2f}",
            f"{args.rows / under[0]:,.0f}",
            f"{plain[0] / under[0]:.0%}",
        ],
    ]
    print_table(f"local scrub of {args.rows:,} rows, with and without a policy", headers, rows)
    report = under[1]
    counts = (
        f"Under the policy: {report['rows_in']:,} in = {report['clean']:,} clean + "
        f"{report['suppressed']:,} suppressed + {report['invalid']:,} invalid + "
        f"{report['deferred']:,} deferred (balanced: {report['balanced']}); on the lists alone "
        f"{plain[1]['clean']:,} clean, {plain[1]['suppressed']:,} suppressed."
    )
    every = (
        f"{args.runs} run(s) per mode, alternating, wall clock of the whole command. Speed "
        "under a policy as a share of the lists-alone run just before it, per pair: "
        f"{', '.join(f'{ratio:.0%}' for ratio in ratios)} (range {min(ratios):.0%} to "
        f"{max(ratios):.0%}). All runs: lists alone "
        f"{', '.join(f'{run[0]:.2f}' for run in plain_runs)} s, policy "
        f"{', '.join(f'{run[0]:.2f}' for run in policy_runs)} s. Load average before "
        f"{load_before}, after {load_after}."
    )
    setup = (
        "Policy: the registry-shaped list and the opt-out list suppress, a consent list (1% "
        "of the registry, no days: until revoked) lifts the registry, calling window "
        "08:00-21:00 in each number's zone(s), cap 3 attempts per number in 24 h (none "
        "recorded), decided for "
        f"{POLICY_AT}. Under a policy every row takes the line-by-line path through "
        "check_with_policy; the lists-alone run takes the numpy fast path."
    )
    print(counts)
    print(every)
    if not args.no_append:
        body = "\n\n".join([markdown_table(headers, rows), counts, every, setup])
        title = f"bench_scrub.py --policy, {args.rows:,} rows"
        append_results(title, machine_description(PACKAGES), body)
        print(f"appended to {RESULTS_PATH}")
    return 0 if report["balanced"] and report["rows_in"] == plain[1]["rows_in"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS, help="lead rows to generate")
    parser.add_argument("--registry-size", type=int, default=2_000_000, help="numbers listed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--server-workers", type=int, default=os.cpu_count() or 1, help="serve --workers"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per mode; the best counts")
    parser.add_argument(
        "--parse-share",
        type=float,
        default=0.0,
        help="share of rows in forms only phonenumbers.parse reads (the worst case; no target)",
    )
    parser.add_argument(
        "--policy",
        action="store_true",
        help="compare local scrubs on the lists alone and under a pre-dial policy (no remote)",
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-scrub-") as folder:
        root = Path(folder)
        data = root / "data"
        data.mkdir()
        started = time.perf_counter()
        listed = build_data(data, args.registry_size, args.seed)
        leads = root / "leads.csv"
        build_leads(leads, args.rows, listed, args.seed, args.parse_share)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        if args.policy:
            return compare_policy(args, root, data, leads)

        load_before = load_average()
        # Alternating, so a burst of other work on the machine weighs on both modes.
        local_runs: list[tuple[float, dict[str, Any]]] = []
        remote_runs: list[tuple[float, dict[str, Any]]] = []
        for _ in range(args.runs):
            local_runs.append(run_scrub(leads, root / "local", "--data-dir", str(data)))
            remote_runs.append(run_remote(leads, root / "remote", data, args.server_workers))
        load_after = load_average()
    local = min(local_runs, key=lambda result: result[0])
    remote = min(remote_runs, key=lambda result: result[0])

    keys = ("rows_in", "clean", "suppressed", "invalid", "duplicates", "invalid_per_reason")
    agree = all(local[1][key] == remote[1][key] for key in keys)
    share = local[0] / remote[0]
    summary = local[1]
    rows = [
        ["local (--data-dir)", f"{local[0]:.2f}", f"{args.rows / local[0]:,.0f}", "100%"],
        [
            f"remote (--target, serve --workers {args.server_workers})",
            f"{remote[0]:.2f}",
            f"{args.rows / remote[0]:,.0f}",
            f"{share:.0%}",
        ],
    ]
    headers = ["mode", "seconds", "rows/s", "speed vs local"]
    print_table(f"scrub of {args.rows:,} mixed-format rows", headers, rows)
    counts = (
        f"Rows: {summary['rows_in']:,} in = {summary['clean']:,} clean + "
        f"{summary['suppressed']:,} suppressed + {summary['invalid']:,} invalid; "
        f"{summary['duplicates']:,} duplicate rows; local and remote summaries "
        f"{'agree' if agree else 'DISAGREE'}."
    )
    if args.rows == TARGET_ROWS and not args.parse_share:
        local_ok = local[0] <= TARGET_LOCAL_SECONDS
        verdicts = (
            f"Targets: local {TARGET_ROWS:,} rows in <= {TARGET_LOCAL_SECONDS:g} s: "
            f"{'met' if local_ok else 'NOT met'} ({local[0]:.2f} s); remote >= "
            f"{TARGET_REMOTE_SHARE:.0%} of local speed: "
            f"{'met' if share >= TARGET_REMOTE_SHARE else 'NOT met'} ({share:.0%})."
        )
    else:
        verdicts = (
            f"Targets are for {TARGET_ROWS:,} rows of the standard mix; this run had "
            f"{args.rows:,} rows, {args.parse_share:.0%} of them in forms only parse reads."
        )
    pairs = [here[0] / there[0] for here, there in zip(local_runs, remote_runs, strict=True)]
    every = (
        f"Best of {args.runs} run(s) per mode, alternating, wall clock of the whole command "
        f"(start-up, loading, reading, checking, writing); all runs: local "
        f"{', '.join(f'{run[0]:.2f}' for run in local_runs)} s, remote "
        f"{', '.join(f'{run[0]:.2f}' for run in remote_runs)} s; remote speed as a share of "
        f"the local run just before it: {', '.join(f'{pair:.0%}' for pair in pairs)} (range "
        f"{min(pairs):.0%} to {max(pairs):.0%}). Load average before {load_before}, after "
        f"{load_after} (other work on the machine skews the figures)."
    )
    mix = (
        "File: 40% E.164, 30% `(212) 555-0123`, 4% `212.555.0123`, 4% `1-212-555-0123`, "
        "4% `+86 138 0013 8000`/`+44 20 ...`, 4% `+1 212 555 0123`, 10% repeats of an earlier "
        "row's phone, 4% invalid; about a fifth of the numbers listed; "
        f"{args.registry_size:,}-number registry-shaped list plus an opt-out list."
    )
    if args.parse_share:
        mix += (
            f" Then {args.parse_share:.0%} of rows replaced by `011 44 20 ...`, "
            "`+44 (0)20 ...` or `1 (212) 555-0123 x7`, which only phonenumbers.parse reads."
        )
    print(counts)
    print(verdicts)
    print(every)
    if not args.no_append:
        body = "\n\n".join([markdown_table(headers, rows), counts, verdicts, every, mix])
        title = f"bench_scrub.py, {args.rows:,} rows"
        if args.parse_share:
            title += f", {args.parse_share:.0%} needing phonenumbers.parse"
        append_results(title, machine_description(PACKAGES), body)
        print(f"appended to {RESULTS_PATH}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
