"""Dated list files: CSV of number and date, refused whole on any bad row."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from suppression.errors import ConfigError
from suppression.policy.datedfile import load_dated_file, parse_dated_spec
from suppression.policy.store import open_store


def test_a_dated_file_loads_in_any_column_order_and_format(tmp_path: Path) -> None:
    path = tmp_path / "consent.csv.gz"
    path.write_bytes(
        gzip.compress(
            b"source,Date,Number\nweb,2026-01-02,+1 212 555 0100\napp,2026-03-04,(212) 555-0101\n"
            b",,\nweb,2026-05-06,+12125550100\n"
        )
    )
    dated = load_dated_file(path, region="US")
    days = dated.lookup(np.array([12125550100, 12125550101, 12125550102], dtype=np.uint64))
    assert days.tolist() == [20579, 20516, -1]  # the last row of a number wins


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("number\n+12125550100\n", "must name a 'number' and a 'date' column"),
        ("number,date\n+12125550100\n", "line 2: missing the number or the date"),
        ("number,date\n+12125550100,2026-01-01\nnope,2026-01-01\n", "line 3: not a phone number"),
        ("number,date\n+12125550100,01/02/2026\n", "line 2: '01/02/2026' is not a date"),
        ("number,date\n+12125550100,1969-12-31\n", "before 1970 or after 2149"),
    ],
)
def test_a_bad_dated_file_is_refused_with_its_line(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason) as refused:
        load_dated_file(path)
    assert "2125550100" not in str(refused.value)  # never a full number in a message


def test_dated_lists_need_a_policy_file_and_distinct_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give --policy-file too"):
        open_store(None, ("a=x.csv",))
    assert open_store(None) is None
    with pytest.raises(ConfigError, match="is not NAME=FILE"):
        parse_dated_spec("consent.csv")
    policy = tmp_path / "p.toml"
    policy.write_text('[lists]\nr = "registry"\n[policies.p]\nsuppress = ["r"]\n')
    with pytest.raises(ConfigError, match="names 'a' twice"):
        open_store(policy, ("a=x.csv", "a=y.csv"))
