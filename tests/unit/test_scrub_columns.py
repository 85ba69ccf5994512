"""Choosing the phone column: by option, by header name, by content."""

from __future__ import annotations

import pytest

from suppression.e164 import Normalizer
from suppression.errors import ConfigError
from suppression.scrub.columns import Detection, check_header, choose_column

ROWS = [["1", "Ann", "(212) 555-0123", "2024-01-01"], ["2", "Bo", "202.555.0147", "2024-01-02"]]


def choose(header: list[str], requested: str = "", region: str = "US", rows=ROWS):  # type: ignore[no-untyped-def]
    return choose_column(header, rows, requested, region, Normalizer(), "leads.csv")


def test_a_requested_name_ignores_case_and_separators() -> None:
    choice = choose(["id", "name", "Mobile Phone", "date"], "mobile_phone")
    assert (choice.index, choice.name, choice.detection) == (2, "Mobile Phone", Detection.OPTION)


def test_a_requested_position_is_one_based() -> None:
    assert choose(["id", "name", "x", "date"], "3").index == 2


def test_a_missing_column_names_the_columns_there_are() -> None:
    with pytest.raises(ConfigError) as caught:
        choose(["id", "name", "x", "date"], "phone")
    assert str(caught.value) == (
        "column 'phone' is not in leads.csv; its columns are: id, name, x, date"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["id", "name", "Phone Number", "date"], 2),
        (["id", "name", "TEL", "date"], 2),
        (["id", "mobile", "phone", "date"], 2),  # "phone" ranks above "mobile"
        (["编号", "姓名", "手机号码", "日期"], 2),
    ],
)
def test_known_header_names(header: list[str], expected: int) -> None:
    choice = choose(header)
    assert (choice.index, choice.detection) == (expected, Detection.NAME)


def test_content_decides_when_no_name_is_known() -> None:
    choice = choose(["a", "b", "c", "d"])
    assert (choice.index, choice.detection) == (2, Detection.CONTENT)


def test_national_forms_without_a_region_cannot_be_recognized() -> None:
    with pytest.raises(ConfigError, match="national number forms also need --region"):
        choose(["a", "b", "c", "d"], region="")


def test_messages_never_show_a_number_from_a_first_line_without_header() -> None:
    with pytest.raises(ConfigError) as caught:
        choose(["Ann", "+12125550123", "NYC", "x"], "phone")
    assert "+12125550123" not in str(caught.value)
    assert "+1212****123" in str(caught.value)


def test_a_first_line_that_is_a_lead_is_refused() -> None:
    header = ["1", "Ann", "(212) 555-0123", "2024-01-01"]
    choice = choose(header)
    assert choice.detection == Detection.CONTENT
    with pytest.raises(ConfigError, match="has no header row") as caught:
        check_header(header, choice, "US", Normalizer(), "leads.csv")
    assert "555" not in str(caught.value)
    check_header(["id", "name", "phone", "date"], choice, "US", Normalizer(), "leads.csv")
