"""Remote mode's fast path: blocks scanned with numpy, numbers sent as integers.

A remote scrub must write exactly the files a local one writes, whatever the
rows hold: numbers the fast path reads, phones only a parser reads, invalid
rows, repeats, quoted and ragged rows, CRLF line ends, with or without
``--dedupe``. Servers are real in-process gRPC servers.
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64
from rich.console import Console

from suppression.checker import Verdict
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.policy.store import PolicyStore
from suppression.replica import Replica
from suppression.scrub import ScrubOptions, ScrubSummary, run_scrub
from suppression.scrub.fastpath import RawBlock, ScanLayout
from suppression.scrub.local import LocalEngine
from suppression.scrub.pool import POOL_THRESHOLD
from suppression.scrub.remote import RemoteEngine
from suppression.scrub.remotescan import BlockToSend, read_answers
from suppression.server import ServerOptions, create_server
from tests.conftest import InProcessServer, replica_data
from tests.samples import WINDOW_AND_REASSIGNED_POLICIES, scrub_with_two_lists

Start = Callable[..., InProcessServer]
QUIET = Console(file=io.StringIO())
INTERNAL = [12125550123, 12025550147]
NATIONAL = [8613800138000, 12125550188, 442079460000]
OUTPUTS = ("clean", "suppressed", "invalid")

PHONES = [
    "+12125550123",  # listed, canonical: read by numpy
    "(212) 555-0123",  # the same, national
    "+8613800138000",
    "+86 138 0013 8000",
    "+12025550147",
    "202-555-0148",
    "202.555.0188",
    "1-202-555-0149",
    "+1 212 555 0188",
    "+44 20 7946 0000",
    "011 44 20 7946 0000",  # only phonenumbers.parse reads these
    "+44 (0)20 7946 0000",
    "(212) 555-0123 x7",
    "+44 (0)20 7946 0011",  # numbers no other phone here gives, read by the parser alone
    "011 86 138 0013 8011",
    "12",
    "n/a",
    "",
    "+999123",
    "+1212555012",
    " +12025550150 ",
    "１２１２５５５０１２３",
]
fields = st.text(alphabet='ab ,"张', max_size=5)
"""No line break: a field that runs over lines sends its whole block down the text path."""


def make_lists() -> SuppressionLists:
    return SuppressionLists(
        {"internal": BitMap64(INTERNAL), "national": BitMap64(NATIONAL)},
        [ListInfo("national", ListKind.REGISTRY)],
        Version(1_700_000_000_000, 5),
        ["internal", "national"],
    )


def local_options(folder: Path) -> ScrubOptions:
    return scrub_with_two_lists(folder, [f"+{n}" for n in INTERNAL], [f"+{n}" for n in NATIONAL])


def scrub(options: ScrubOptions, source: Path, folder: Path) -> ScrubSummary:
    folder.mkdir(exist_ok=True)
    return run_scrub(
        replace(options, output_dir=folder), source, console=QUIET, show_progress=False
    )


def both(
    folder: Path, source: Path, target: str, **extra: object
) -> tuple[ScrubSummary, ScrubSummary]:
    """Scrub ``source`` locally and against ``target``; every output file must match."""
    local = replace(local_options(folder), **extra)  # type: ignore[arg-type]
    remote = replace(ScrubOptions(region="US", processes=1, targets=(target,)), **extra)  # type: ignore[arg-type]
    here = scrub(local, source, folder / "local")
    there = scrub(remote, source, folder / "remote")
    for kind in OUTPUTS:
        name = f"{source.name.split('.')[0]}.{kind}.csv"
        assert (folder / "remote" / name).read_bytes() == (folder / "local" / name).read_bytes()
    for key in (
        "rows_in",
        "clean",
        "suppressed",
        "invalid",
        "duplicates",
        "duplicates_dropped",
        "distinct_numbers",
        "blank_lines",
    ):
        assert getattr(here, key) == getattr(there, key), key
    assert here.invalid_per_reason == there.invalid_per_reason
    # A file without one valid number leaves a remote scrub no list names to learn (as
    # before blocks were scanned): compared by their counts.
    assert _counted(here.suppressed_per_list) == _counted(there.suppressed_per_list)
    kept = there.clean + there.suppressed + there.invalid
    assert there.rows_in == kept + there.duplicates_dropped
    assert there.mode == "remote"
    # Known once some number was asked for (a file of empty phones asks for none).
    assert there.data_versions in ({target: "1700000000000-5"}, {})
    return here, there


def _counted(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: count for name, count in counts.items() if count}


FILLER = b"".join(f"f{n},+1303555{n % 10_000:04d},x\n".encode() for n in range(14_000))
"""300 KiB of rows: the first 256 KiB of a file are read line by line (with the header and
the sample), the rows after them in blocks, by the fast path when a block fits."""


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(fields, st.sampled_from(PHONES), st.booleans(), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    dedupe=st.booleans(),
    crlf=st.booleans(),
    broken=st.booleans(),
)
def test_remote_and_local_scrubs_write_the_same_files(
    tmp_path_factory: pytest.TempPathFactory,
    start_server: Start,
    rows: list[tuple[str, str, bool, bool]],
    dedupe: bool,
    crlf: bool,
    broken: bool,
) -> None:
    """``broken``: a field runs over two lines, and its block takes the text path."""
    server = start_server(make_lists())
    folder = tmp_path_factory.mktemp("scrub")
    end = "\r\n" if crlf else "\n"
    buffer = io.StringIO()
    buffer.write(f"name,phone,notes{end}")
    buffer.write(FILLER.decode().replace("\n", end))
    for name, phone, ragged, quoted in rows:
        shown = f'"{phone}"' if quoted and phone and '"' not in phone else phone
        line = [_field(name), shown] if ragged else [_field(name), shown, "x"]
        buffer.write(",".join(line) + end)
    if broken:
        buffer.write(f'"two{end}lines",+12125550123,x{end}')
    source = folder / "leads.csv"
    source.write_bytes(buffer.getvalue().encode())
    both(folder, source, server.target, dedupe=dedupe)


def _field(value: str) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow([value])
    return text.getvalue()


def test_a_large_file_through_the_workers_matches_local(
    tmp_path: Path, start_server: Start
) -> None:
    """Enough rows for the worker pool, several blocks; repeats across blocks; --dedupe too."""
    server = start_server(make_lists())
    rng = np.random.default_rng(3)
    numbers = rng.integers(2_000_000, 9_999_999, size=POOL_THRESHOLD * 3)
    picks = rng.integers(0, len(PHONES), size=len(numbers))
    lines = ["id,phone,city\n"]
    for index, (number, pick) in enumerate(zip(numbers.tolist(), picks.tolist(), strict=True)):
        phone = PHONES[pick] if pick % 3 == 0 else f"+1212{number:07d}"
        if pick == 1:
            phone = f"(303) {number // 10_000:03d}-{number % 10_000:04d}"
        lines.append(f"{index},{phone},Denver\n")
    source = tmp_path / "leads.csv"
    source.write_text("".join(lines))
    for dedupe in (False, True):
        here, there = both(tmp_path, source, server.target, processes=2, dedupe=dedupe)
        assert there.rows_in == len(numbers) and there.suppressed > 0 and there.invalid > 0


def test_answers_of_a_block_cover_its_numbers_and_texts(start_server: Start) -> None:
    """take_block: integers first, then texts; the same as the local engine's scan."""
    lists = make_lists()
    server = start_server(lists)
    data = (
        b"1,+12125550123,a\n2,(212) 555-0123,b\n3,+44 (0)20 7946 0000,c\n4,junk,d\n"
        b"5,+12025550999,e\n6,+12125550123,f\n"
    )
    layout: ScanLayout = ("utf-8", ",", 3, 1, "US")
    engine = RemoteEngine([server.target], "US", [], processes=1)
    try:
        assert engine.reads_blocks
        scanned, answers = engine.take_block(engine.scan(RawBlock(data, 2), layout))
    finally:
        engine.end()
        engine.close()
    assert scanned.values.tolist() == [12025550999, 12125550123]
    assert scanned.inverse.tolist() == [1, 1, 0, 1]
    assert scanned.texts == ["+44 (0)20 7946 0000", "junk"]
    texts, masks, read, distinct = read_answers(scanned, answers)
    assert distinct.tolist() == [12025550999, 12125550123, 442079460000]
    assert [Verdict(v).name for v in read.verdicts] == [
        "SUPPRESSED",
        "SUPPRESSED",
        "ALLOWED",
        "SUPPRESSED",
    ]
    assert [Verdict(v).name for v in texts.verdicts] == ["SUPPRESSED", "INVALID"]
    assert texts.values.tolist() == [442079460000, 0]
    local = LocalEngine(lists.view, "US", [], processes=1)
    try:
        local_scan = local.scanned(local.scan(RawBlock(data, 2), layout))
    finally:
        local.close()
    assert masks.tolist() == local_scan[1].tolist()


def test_a_block_answered_at_an_older_version_is_asked_again(start_server: Start) -> None:
    lists = make_lists()
    server = start_server(lists, max_batch=2)  # integers too go two at a time
    changed: list[Version] = []

    def change_once(_count: int) -> None:
        if not changed:
            changed.append(lists.apply([Change(Op.ADD, "internal", [12025550148])]))

    data = b"".join(f"{n},+1202555{n:04d},x\n".encode() for n in range(140, 160))
    engine = RemoteEngine(
        [server.target], "US", [], batch_size=2, streams_per_target=1, progress=change_once
    )
    try:
        scanned, answers = engine.take_block(
            engine.scan(RawBlock(data, 1), ("utf-8", ",", 3, 1, "US"))
        )
    finally:
        engine.end()
        engine.close()
    assert answers.versions == {server.target: str(changed[0])}
    _, _, read, _ = read_answers(scanned, answers)
    # +12025550147 was listed from the start, +12025550148 since the change.
    assert np.flatnonzero(read.verdicts == Verdict.SUPPRESSED).tolist() == [7, 8]


def test_servers_that_decide_under_a_default_policy_get_text(
    tmp_path: Path, start_server: Start
) -> None:
    """A server with policies decides a scrub that asks for none under its default one: the
    fast path, which writes no deferred rows, is not taken (the text path writes them)."""
    plain = start_server(make_lists())
    (tmp_path / "fcc.csv").write_text("number,date\n+12125550177,2025-01-01\n")
    path = tmp_path / "policies.toml"
    path.write_text(WINDOW_AND_REASSIGNED_POLICIES.format(version="v1"))
    lists = SuppressionLists(
        {"registry": BitMap64(NATIONAL), "consent": BitMap64()},
        infos=[ListInfo("registry", ListKind.REGISTRY), ListInfo("consent", ListKind.CAMPAIGN)],
    )
    replica = Replica(
        replica_data(lists), policies=PolicyStore(path, {"fcc": tmp_path / "fcc.csv"})
    )
    replica.start()
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    deciding = f"127.0.0.1:{process.port}"
    try:
        for targets, policy, expected in (
            ([plain.target], None, True),
            ([plain.target], ("", 1_781_000_000_000), False),  # --decide-at
            ([deciding], None, False),
            ([plain.target, deciding], None, False),
        ):
            engine = RemoteEngine(targets, "US", [], processes=1, policy=policy)
            try:
                assert engine.reads_blocks is expected, (targets, policy)
            finally:
                engine.end()
                engine.close()
    finally:
        process.stop(0)


def test_a_block_taken_leaves_nothing_behind(start_server: Start) -> None:
    """The scrub pauses the cyclic garbage collector: a block's scan must be freed by
    reference counts alone once it is taken, or memory grows with the file."""
    server = start_server(make_lists())
    data = b"".join(f"{n},+1202555{n:04d},x\n".encode() for n in range(200))
    engine = RemoteEngine([server.target], "US", [], processes=2, expected_rows=POOL_THRESHOLD)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for first in range(1, 1201, 200):
            asked = engine.scan(RawBlock(data, first), ("utf-8", ",", 3, 1, "US"))
            scanned, answers = engine.take_block(asked)
            assert len(answers.verdicts) == scanned.size == 200
            del asked, scanned, answers
        left = [item for item in gc.get_objects() if isinstance(item, BlockToSend)]
        # A worker's feeding thread holds its last answer until its next: two at most.
        assert len(left) <= 2
    finally:
        if enabled:
            gc.enable()
        engine.end()
        engine.close()
