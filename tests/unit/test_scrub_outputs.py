"""Output files: names beside the input, written atomically, summaries that must add up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suppression.scrub.outputs import OutputKind, OutputSet, output_paths
from suppression.scrub.reading import InputFileError
from suppression.scrub.summary import ScrubSummary, SummaryError


@pytest.mark.parametrize(
    ("name", "clean", "summary"),
    [
        ("leads.csv", "leads.clean.csv", "leads.summary.json"),
        ("leads.csv.gz", "leads.clean.csv", "leads.summary.json"),
        ("May Leads.tsv", "May Leads.clean.tsv", "May Leads.summary.json"),
        ("leads", "leads.clean.csv", "leads.summary.json"),
    ],
)
def test_outputs_sit_beside_the_input(name: str, clean: str, summary: str) -> None:
    paths = output_paths(Path("/data") / name)
    assert paths[OutputKind.CLEAN] == Path("/data") / clean
    assert paths[OutputKind.SUMMARY_JSON] == Path("/data") / summary
    assert output_paths(Path("/data") / name, Path("/out"))[OutputKind.CLEAN].parent == Path("/out")


def test_nothing_appears_under_a_final_name_before_commit(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "leads.csv")
    with OutputSet(paths, "utf-8") as outputs:
        for kind in OutputKind:
            outputs.open(kind).write(f"{kind.value}\n")
        assert not any(path.exists() for path in paths.values())
        assert len(list(tmp_path.iterdir())) == len(OutputKind)  # hidden partial files
        outputs.commit()
    assert {path.read_text() for path in paths.values()} == {f"{k.value}\n" for k in OutputKind}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_a_failed_run_leaves_the_previous_outputs_alone(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "leads.csv")
    paths[OutputKind.CLEAN].write_text("previous run\n")
    with pytest.raises(RuntimeError), OutputSet(paths, "utf-8") as outputs:
        outputs.open(OutputKind.CLEAN).write("half a file")
        raise RuntimeError("interrupted")
    assert paths[OutputKind.CLEAN].read_text() == "previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["leads.clean.csv"]


def test_commit_removes_a_stale_summary_before_renaming(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "leads.csv")
    paths[OutputKind.SUMMARY_JSON].write_text("{}")
    with OutputSet(paths, "utf-8") as outputs:
        outputs.open(OutputKind.CLEAN).write("x\n")
        outputs.commit()
    assert not paths[OutputKind.SUMMARY_JSON].exists()
    assert paths[OutputKind.CLEAN].read_text() == "x\n"


def test_partial_files_of_a_killed_scrub_are_removed_by_the_next(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)  # reaped: no process has this pid (barring reuse)
    running = os.getppid()  # alive, as a concurrent scrub of the same file would be
    for pid in (dead, running):
        for name in ("leads.clean.csv", "leads.summary.json"):
            (tmp_path / f".{name}.{pid}.partial").write_text("half")
    (tmp_path / ".other.clean.csv.1.partial").write_text("not ours")
    (tmp_path / f".leads.clean.csv.{dead}.partial.keep").write_text("not a partial file")
    paths = output_paths(tmp_path / "leads.csv")
    with OutputSet(paths, "utf-8"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f".leads.clean.csv.{running}.partial",
            f".leads.summary.json.{running}.partial",
            ".other.clean.csv.1.partial",
            f".leads.clean.csv.{dead}.partial.keep",
        ]
    )


def test_a_missing_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        OutputSet(output_paths(tmp_path / "leads.csv", tmp_path / "nowhere"), "utf-8")


def summary(**changes: object) -> ScrubSummary:
    values: dict[str, object] = {
        "input": "leads.csv",
        "mode": "local",
        "encoding": "utf-8",
        "delimiter": ",",
        "column": "phone",
        "column_detection": "name",
        "region": "US",
        "rows_in": 10,
        "clean": 6,
        "suppressed": 3,
        "invalid": 1,
        "duplicates": 2,
        "distinct_numbers": 7,
        "blank_lines": 0,
        "lists_checked": ("internal", "national"),
        "suppressed_per_list": {"internal": 1, "national": 3},
        "invalid_per_reason": {"TOO_SHORT": 1},
        "data_versions": {"local": "1700000000000-0"},
        "seconds": 0.5,
    }
    values.update(changes)
    return ScrubSummary(**values)  # type: ignore[arg-type]


def test_a_summary_that_does_not_add_up_cannot_exist() -> None:
    with pytest.raises(SummaryError, match="10 rows read but 9 written"):
        summary(clean=5)
    with pytest.raises(SummaryError, match="per reason"):
        summary(invalid_per_reason={"TOO_SHORT": 2})
    with pytest.raises(SummaryError, match="more rows than were suppressed"):
        summary(suppressed_per_list={"national": 4})


def test_the_summary_in_json_and_as_a_table() -> None:
    data = json.loads(summary().to_json())
    assert data["rows_in"] == data["clean"] + data["suppressed"] + data["invalid"] == 10
    assert data["balanced"] is True
    assert data["data_versions"] == {"local": "1700000000000-0"}
    assert data["rows_per_second"] == 20
    text = summary().to_text()
    for expected in ("rows in", "clean + suppressed + invalid", "on list national", "TOO_SHORT"):
        assert expected in text
    assert "local 1700000000000-0" in text
