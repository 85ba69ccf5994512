"""Pre-dial policy benchmark: a policy's throughput against lists alone, in the same run.

One run, on one registry-shaped data set (issue 11, item 7):

- **throughput**: batches of ``--batch`` (10,000) E.164 integers through
  ``Replica.check`` with lists only (the national registry and an opt-out
  list), and, call by call in turn, through the policy path: the same lists, one
  exemption list (a dated list, 18 months), a calling window (08:00-21:00
  in every zone of the number) and a cap (3 attempts in 24 hours per number,
  over ``--attempts`` recorded attempts). ``--rounds`` rounds of ``2 x
  --seconds``; each round's ratio is policy/lists. Target: at least 0.5.
- **attempts**: the cost of recording attempts (``SuppressionLists.apply`` of
  1,000 attempts onto the log) and of a cap in a check.
- **memory**: a dated list (bitmap plus a ``uint16`` day per number) against
  the plain list of the same numbers and against a bit-sliced index (one
  bitmap per bit of the day), days spread over two years.

It prints tables and appends a dated section to RESULTS.md (``--no-record``
to skip). Usage: ``.venv/bin/python benchmarks/bench_policy.py [--size 2000000]
[--batch 10000] [--rounds 5] [--seconds 2] [--attempts 500000] [--no-record]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import (
    Timing,
    append_results,
    load_average,
    machine_description,
    markdown_table,
    print_table,
    run_for,
)
from pyroaring import BitMap64

from suppression.datasource import LoadedData
from suppression.demo import registry_shaped
from suppression.e164 import Normalizer
from suppression.entries import attempt_entries
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.policy.batch import PolicyRequest, check_with_policy
from suppression.policy.dated import DatedList
from suppression.policy.store import PolicyStore
from suppression.replica import Replica

PACKAGES = ("numpy", "pyroaring", "phonenumbers")
AT = int(dt.datetime(2026, 6, 15, 18, 0, tzinfo=dt.UTC).timestamp())
"""14:00 in New York, 11:00 in Los Angeles: most numbers inside the window, some not."""
EPOCH = dt.date(1970, 1, 1)
TARGET_RATIO = 0.5

POLICY = """\
version = "bench"

[lists]
national = "registry"
company = "opt_out"
consent = "exemption"

[policies.bench]
suppress = ["national", "company"]

[[policies.bench.exemptions]]
list = "consent"
lifts = ["national"]
months = 18

[policies.bench.window]
start = "08:00"
end = "21:00"

[[policies.bench.caps]]
per = "number"
max = 3
hours = 24
"""


def real_area_codes() -> np.ndarray:
    """Area codes phonenumbers places in one or two zones (the US and Canada, mostly)."""
    from phonenumbers import tzdata

    codes = sorted(
        int(prefix[1:])
        for prefix, zones in tzdata.TIMEZONE_DATA.items()
        if len(prefix) == 4 and prefix[0] == "1" and len(zones) <= 2
    )
    return np.array(codes, dtype=np.uint64)


def realistic(numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``registry_shaped`` numbers spread over real area codes, keeping their exchange blocks.

    ``registry_shaped`` draws a few area codes, some unassigned; phonenumbers places those
    in all 42 North American zones, where a calling window never opens.
    """
    line = numbers % np.uint64(10**7)
    area = codes[((numbers // np.uint64(10**4)) % np.uint64(len(codes))).astype(np.intp)]
    return np.unique(np.uint64(10**10) + area * np.uint64(10**7) + line)


def build(size: int, attempts: int, seed: int) -> tuple[SuppressionLists, DatedList, np.ndarray]:
    """The lists, the dated consent list, and the population batches are drawn from."""
    rng = np.random.default_rng(seed)
    codes = real_area_codes()
    national = realistic(registry_shaped(size, seed=seed), codes)
    # Half of the batch numbers on the registry, the others from elsewhere in the same blocks.
    others = realistic(registry_shaped(size, seed=seed + 1), codes)
    population = np.concatenate([national, others])
    company = rng.choice(population, size // 20, replace=False)
    consent_numbers = rng.choice(population, size // 10, replace=False)
    today = (dt.date(2026, 6, 15) - EPOCH).days
    consent = DatedList.build(
        consent_numbers, rng.integers(today - 900, today, len(consent_numbers))
    )
    lists = SuppressionLists(
        {"national": BitMap64(national.tolist()), "company": BitMap64(company.tolist())},
        infos=[ListInfo("national", ListKind.REGISTRY), ListInfo("company", ListKind.OPT_OUT)],
    )
    called = rng.choice(population, attempts)
    times = rng.integers(AT - 2 * 86_400, AT, attempts)
    for start in range(0, attempts, 100_000):
        entries = attempt_entries(
            called[start : start + 100_000].tolist(),
            times[start : start + 100_000].tolist(),
            [""] * len(called[start : start + 100_000]),
        )
        lists.apply([entry.to_change() for entry in entries])
    return lists, consent, population


def bsi_bytes(numbers: np.ndarray, days: np.ndarray) -> int:
    """Bytes of a bit-sliced index of ``days``: one bitmap per bit, plus the existence bitmap."""
    total = _bytes(BitMap64(numbers.tolist()))
    for bit in range(16):
        chosen = numbers[(days >> bit) & 1 == 1]
        total += _bytes(BitMap64(chosen.tolist()))
    return total


def _bytes(bitmap: BitMap64) -> int:
    stats = bitmap.get_statistics()
    return int(sum(stats[k] for k in stats if k.startswith("n_bytes_")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2_000_000, help="numbers on the registry")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two modes")
    parser.add_argument("--seconds", type=float, default=2.0, help="per mode per round")
    parser.add_argument("--attempts", type=int, default=500_000, help="attempts on record")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    machine = machine_description(PACKAGES)
    load_before = load_average()
    lists, consent, population = build(args.size, args.attempts, args.seed)
    view = lists.view
    rng = np.random.default_rng(args.seed + 2)
    batches = [rng.choice(population, args.batch).tolist() for _ in range(16)]
    with tempfile.TemporaryDirectory() as tmp:
        policy_file = Path(tmp) / "policies.toml"
        policy_file.write_text(POLICY)
        store = PolicyStore(policy_file)
    data = LoadedData(lists, None, None, 0.0, len(view.bitmaps["national"]))
    plain = Replica(data)
    plain.start()
    normalizer = Normalizer()
    request = PolicyRequest(at_ms=AT * 1000)
    policies = store.current

    def lists_only(batch: list[int]) -> object:
        return plain.check(batch, (), "", ("national", "company"), normalizer)

    def with_policy(batch: list[int]) -> object:
        # What Replica.check runs under --policy-file, with the dated consent list.
        return check_with_policy(
            view, policies, request, batch, dated={"consent": consent}, attempts=view.attempts
        )

    def without_cap(batch: list[int]) -> object:
        return check_with_policy(
            view, no_cap, request, batch, dated={"consent": consent}, attempts=view.attempts
        )

    no_cap = type(policies)(
        {"bench": policies.policies["bench"].__class__(
            **{**_fields(policies.policies["bench"]), "caps": ()}
        )},
        "bench",
        "bench-no-cap",
        policies.roles,
    )  # fmt: skip
    sample = with_policy(batches[0])
    counts = sample.verdict_counts  # type: ignore[attr-defined]

    rows = []
    ratios = []
    for index in range(args.rounds):
        base, policy = paired(lists_only, with_policy, batches, 2 * args.seconds)
        ratio = policy.per_second(args.batch) / base.per_second(args.batch)
        ratios.append(ratio)
        rows.append(
            [
                str(index + 1),
                f"{base.per_second(args.batch):,.0f}",
                f"{policy.per_second(args.batch):,.0f}",
                f"{ratio:.2f}",
            ]
        )
    headers = ["Round", "lists only numbers/s", "policy numbers/s", "policy / lists"]
    print_table(f"Batches of {args.batch:,}, {args.size:,} numbers on the registry", headers, rows)

    cap_cost = _cost_of_cap(with_policy, without_cap, batches, args.seconds, args.batch)
    record = _record_cost(lists, args.seconds)
    numbers = np.unique(consent.bitmap.to_array())
    plain_bytes = _bytes(consent.bitmap)
    bsi = bsi_bytes(numbers, consent.days)
    today = (dt.date(2026, 6, 15) - EPOCH).days
    in_range = _bytes(consent.on_days(today - 547, today))
    memory_rows = [
        [name, f"{size:,}", f"{size / len(numbers):.2f}"]
        for name, size in [
            ("plain list", plain_bytes),
            ("dated list (bitmap + uint16 in rank order)", consent.nbytes()),
            ("... plus an 18-month exemption's range bitmap", consent.nbytes() + in_range),
            ("bit-sliced index (16 + 1 bitmaps)", bsi),
        ]
    ]
    print_table(
        f"A dated list of {len(numbers):,} numbers, days over 2.5 years",
        ["Layout", "bytes", "bytes/number"],
        memory_rows,
    )
    cost_rows = [
        ["record 1,000 attempts (apply onto the log)", f"{record:,.1f} µs per attempt"],
        ["a 3-per-24h cap in a check", f"{cap_cost:,.0f} ns per number"],
    ]
    print_table(f"Attempts ({args.attempts:,} on record)", ["Cost", "figure"], cost_rows)
    worst, best = min(ratios), max(ratios)
    verdict = "met" if worst >= TARGET_RATIO else "**MISSED**"
    print(f"policy / lists: {worst:.2f} (worst) to {best:.2f} (best); target >= 0.5: {verdict}")
    print(f"verdicts of a sample batch: { {v.name: n for v, n in counts.items()} }")
    if args.no_record:
        return
    body = "\n\n".join(
        [
            markdown_table(headers, rows),
            f"Verdict: policy throughput is {worst:.2f}x (worst round) to {best:.2f}x (best) of "
            f"lists only in the same run; target at least {TARGET_RATIO}x: {verdict}. In process "
            "(`Replica.check` against `check_with_policy`, which `Replica.check` runs under "
            "`--policy-file`); not measured over gRPC, where policy answers also carry "
            "three more packed arrays (rules, exemptions, earliest times). "
            "Verdicts of a sample batch: "
            + ", ".join(f"{v.name} {n:,}" for v, n in counts.items() if n)
            + ".",
            markdown_table(["Layout", "bytes", "bytes/number"], memory_rows),
            markdown_table(["Cost", "figure"], cost_rows),
            f"Load average before: {load_before}; after: {load_average()}.",
        ]
    )
    append_results(
        f"bench_policy.py, batches of {args.batch:,}, {args.size:,} numbers", machine, body
    )


def paired(
    first: Callable[[list[int]], object],
    second: Callable[[list[int]], object],
    batches: list[list[int]],
    seconds: float,
) -> tuple[Timing, Timing]:
    """Time two calls on the same batches, alternating call by call (order flipped each time).

    This machine is shared: load moves within seconds, so two modes timed one after the
    other differ by the load as much as by the code. Interleaved, both see the same load.
    """
    clock = time.perf_counter
    for batch in batches[:2]:
        first(batch)
        second(batch)
    spent = [0.0, 0.0]
    calls = 0
    deadline = clock() + seconds
    while clock() < deadline or calls < 4:
        batch = batches[calls % len(batches)]
        order = ((0, first), (1, second)) if calls % 2 == 0 else ((1, second), (0, first))
        for slot, call in order:
            start = clock()
            call(batch)
            spent[slot] += clock() - start
        calls += 1
    return Timing(calls, spent[0]), Timing(calls, spent[1])


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]


def _cost_of_cap(with_cap, without_cap, batches, seconds, batch):  # type: ignore[no-untyped-def]
    """Nanoseconds per number that the cap adds (best of each)."""
    capped: Timing = run_for(with_cap, batches, seconds)
    free: Timing = run_for(without_cap, batches, seconds)
    return capped.ns_per_item(batch) - free.ns_per_item(batch)


def _record_cost(lists: SuppressionLists, seconds: float) -> float:
    """Microseconds per attempt to apply a batch of 1,000 attempts onto the attempt log."""
    rng = np.random.default_rng(11)
    batches = []
    for _ in range(8):
        numbers = (12_000_000_000 + rng.integers(0, 10**9, 1000)).tolist()
        (entry,) = attempt_entries(numbers, [AT] * 1000, ["sim-1"] * 1000)
        batches.append([entry.to_change()])
    timing = run_for(lambda changes: lists.apply(changes), batches, seconds, min_calls=5)
    return timing.seconds * 1e6 / (timing.calls * 1000)


if __name__ == "__main__":
    main()
