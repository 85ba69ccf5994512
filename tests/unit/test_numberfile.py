from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pyroaring import BitMap64

from suppression.datasource import DataSource, load_lists, parse_list_spec
from suppression.errors import ConfigError, ConsentRequiredError, NumberFileError, SnapshotError
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.numberfile import read_number_file
from suppression.settings import Settings
from suppression.snapshot import write_snapshot


def test_any_format_comments_and_blocks(tmp_path: Path) -> None:
    path = tmp_path / "optouts.txt"
    path.write_text(
        "\ufeff# company opt-outs\n+8613800138000\n\n"
        "0086 139 1234 5678\n(212) 555-0123\n+1900xxxxxxx\n",
        encoding="utf-8",
    )
    loaded = read_number_file(path, "CN")
    assert loaded.numbers.tolist() == [8613800138000, 8613912345678, 862125550123]
    assert [(b.first, b.last) for b in loaded.blocks] == [(19000000000, 19009999999)]
    bitmap = loaded.to_bitmap()
    assert len(bitmap) == 3 + 10_000_000


def test_invalid_lines_refuse_the_file_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt.gz"
    with gzip.open(path, "wt") as out:
        out.write("+8613800138000\nnot a number\n2125550123\n+999xxxx\n")
    with pytest.raises(
        NumberFileError,
        match=r"3 invalid line\(s\).*line 2 \(unparseable\), "
        r"line 3 \(missing_region\), line 4.*--skip-invalid",
    ):
        read_number_file(path)
    loaded = read_number_file(path, skip_invalid=True)
    assert loaded.numbers.tolist() == [8613800138000]
    assert [n for n, _ in loaded.skipped_lines] == [2, 3, 4]


def test_list_specs() -> None:
    spec = parse_list_spec("national:registry=/x/dnc.txt")
    assert (spec.name, spec.kind, str(spec.path)) == ("national", ListKind.REGISTRY, "/x/dnc.txt")
    assert parse_list_spec("internal=o.txt").kind is ListKind.OPT_OUT
    with pytest.raises(ConfigError, match="NAME=FILE"):
        parse_list_spec("internal")
    with pytest.raises(ConfigError, match="unknown kind 'vip'"):
        parse_list_spec("a:vip=x")


def test_load_lists_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to serve"):
        load_lists(DataSource.from_settings(Settings()))
    with pytest.raises(SnapshotError, match="no snapshot in"):
        load_lists(DataSource.from_settings(Settings(data_dir=tmp_path)))
    with pytest.raises(ConfigError, match="no such file"):
        load_lists(DataSource.from_settings(Settings(list=("a=" + str(tmp_path / "missing.txt"),))))
    with pytest.raises(ConfigError, match="unknown default region"):
        DataSource.from_settings(Settings(list=("a=x",), region="ZZ"))


def test_serve_list_cannot_turn_a_snapshot_opt_out_list_into_another_kind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_snapshot(
        data,
        SuppressionLists(
            {"internal": BitMap64([8613800138000])}, [ListInfo("internal", ListKind.OPT_OUT)]
        ).view,
    )
    extra = tmp_path / "extra.txt"
    extra.write_text("+12125550123\n")
    for spec in ("internal:campaign", "internal:registry"):
        source = DataSource(data_dir=data, list_files=(parse_list_spec(f"{spec}={extra}"),))
        with pytest.raises(ConsentRequiredError, match="'internal' is an opt-out list"):
            load_lists(source)
    # The same list as an opt-out list, or a new list of any kind, loads.
    for spec in ("internal", "spring:campaign"):
        source = DataSource(data_dir=data, list_files=(parse_list_spec(f"{spec}={extra}"),))
        assert load_lists(source).lists.view.infos["internal"].kind is ListKind.OPT_OUT
