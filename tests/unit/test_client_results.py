"""The client's pure parts: splitting, reassembly, typed results, and its import weight."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

import suppression.client
from suppression.client import CheckResult, InvalidReason, Verdict
from suppression.client.assembly import Piece, merge, split
from suppression.client.result import version_key
from suppression.v1 import suppression_pb2 as pb


def test_public_api_is_pinned() -> None:
    assert suppression.client.__all__ == sorted(suppression.client.__all__)
    assert suppression.client.__all__ == [
        "CheckResult",
        "CheckStream",
        "ClientConfig",
        "ClientError",
        "DeadlineExceededError",
        "IncompleteWriteError",
        "InvalidReason",
        "InvalidRequestError",
        "KeepAlive",
        "ListInfo",
        "NotReadyError",
        "NumberResult",
        "Part",
        "PermissionDeniedError",
        "PolicyArrays",
        "PolicyVersionMismatchError",
        "QuotaExceededError",
        "RecordedAttempts",
        "RetryPolicy",
        "ServerError",
        "Status",
        "SuppressionClient",
        "TlsConfig",
        "UnauthenticatedError",
        "UnavailableError",
        "Verdict",
    ]


def test_importing_the_client_loads_nothing_heavy() -> None:
    code = "import sys\nimport suppression.client\nprint('\\n'.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    for heavy in ("numpy", "pyroaring", "redis", "phonenumbers", "prometheus_client"):
        assert not any(name == heavy or name.startswith(heavy + ".") for name in loaded), heavy
    ours = {name for name in loaded if name.startswith("suppression.")}
    assert ours <= {"suppression.errors", "suppression.targets", "suppression.v1"} | {
        name for name in ours if name.startswith(("suppression.client", "suppression.v1."))
    }


def test_enums_are_the_wire_enums() -> None:
    assert {v.name: v.value for v in Verdict} == {
        name.removeprefix("VERDICT_"): value for name, value in pb.Verdict.items()
    }
    assert {r.name: r.value for r in InvalidReason} == {
        name.removeprefix("INVALID_REASON_"): value for name, value in pb.InvalidReason.items()
    }


@given(
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(1, 12),
)
def test_split_covers_every_number_once_in_order(n_e164: int, n_text: int, size: int) -> None:
    e164 = list(range(1, n_e164 + 1))
    texts = [f"+{i}" for i in range(n_text)]
    pieces = split(e164, texts, size)
    assert all(0 < len(piece) <= size for piece in pieces) or n_e164 + n_text == 0
    assert [n for piece in pieces for n in piece.e164] == e164
    assert [t for piece in pieces for t in piece.numbers] == texts
    starts = [piece.start for piece in pieces]
    assert starts == [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]


def _answer(
    piece: Piece, names: list[str], version: str, on: dict[str, set[int]]
) -> pb.CheckResponse:
    """What a server holding ``on`` (list -> numbers) would answer for ``piece``."""
    verdicts, masks, normalized, reasons = [], [], [], {}
    values = [*piece.e164, *(int(t[1:]) if t[1:].isdigit() else 0 for t in piece.numbers)]
    for index, value in enumerate(values):
        if value == 0:
            verdicts.append(pb.INVALID)
            masks.append(0)
            reasons[index] = pb.UNPARSEABLE
        else:
            mask = sum(1 << bit for bit, name in enumerate(names) if value in on[name])
            verdicts.append(pb.SUPPRESSED if mask else pb.ALLOWED)
            masks.append(mask)
        if index >= len(piece.e164):
            normalized.append(value)
    return pb.CheckResponse(
        verdicts=verdicts,
        matched=masks,
        list_names=names,
        invalid_reasons=reasons,
        normalized=normalized,
        version=version,
    )


@given(
    st.lists(st.integers(1, 40), max_size=25),
    st.lists(st.one_of(st.integers(1, 40).map(lambda n: f"+{n}"), st.just("junk")), max_size=25),
    st.integers(1, 9),
)
def test_merge_matches_a_set_model(e164: list[int], texts: list[str], size: int) -> None:
    on = {"a": set(range(1, 41, 3)), "b": set(range(1, 41, 4))}
    pieces = split(e164, texts, size)
    answered = []
    for number, piece in enumerate(pieces):
        # Servers may name the lists in another order; the result must not care.
        names = ["a", "b"] if number % 2 == 0 else ["b", "a"]
        answered.append((piece, _answer(piece, names, f"17000-{5 - number % 3}", on), "t"))
    result = merge(answered)
    values = [*e164, *(int(t[1:]) if t != "junk" else 0 for t in texts)]
    assert len(result) == len(values)
    for index, value in enumerate(values):
        record = result[index]
        expected = tuple(name for name in result.list_names if value in on[name])
        if value == 0:
            assert record.verdict is Verdict.INVALID
            assert record.reason is InvalidReason.UNPARSEABLE
        else:
            assert record.verdict is (Verdict.SUPPRESSED if expected else Verdict.ALLOWED)
            assert set(record.lists) == {name for name in on if value in on[name]}
            assert record.e164 == value
    assert result.suppressed_indexes() == [i for i, r in enumerate(result) if r.lists]
    assert result.version == min((p.version for p in result.parts), key=version_key)
    assert [p.start for p in result.parts] == [p.start for p in pieces]


def test_the_version_of_a_split_answer_is_the_oldest_part() -> None:
    pieces = split([1, 2, 3], [], 1)
    answered = [
        (piece, pb.CheckResponse(verdicts=[pb.ALLOWED], matched=[0], version=version), target)
        for piece, version, target in zip(
            pieces, ["1700-9", "1699-12", "1700-0"], ["a", "b", "a"], strict=True
        )
    ]
    result = merge(answered)
    assert result.version == "1699-12"
    assert [(p.target, p.version) for p in result.parts] == [
        ("a", "1700-9"),
        ("b", "1699-12"),
        ("a", "1700-0"),
    ]


def test_accessors() -> None:
    result = CheckResult(
        [1, 2, 3, 2],
        [0, 0b11, 0, 0b10],
        ["national", "internal"],
        {2: 3},
        [12125550123, 8613800138000, 0, 442071838750],
        version="1-1",
        stale=False,
        failed_closed=False,
    )
    assert len(result) == 4
    assert result.allowed_indexes() == [0]
    assert result.suppressed_indexes() == [1, 3]
    assert result.invalid_indexes() == [2]
    assert result.allowed() == [12125550123]
    assert result.suppressed() == [8613800138000, 442071838750]
    assert result[1].lists == ("national", "internal")
    assert result[-1].lists == ("internal",)
    assert result[2].reason is InvalidReason.TOO_SHORT and not result[2].may_dial
    assert result[0].may_dial and result[0].reason is None
    assert result.matched_lists == [(), ("national", "internal"), (), ("internal",)]
    assert not result.all_allowed
    assert version_key("garbage") < version_key("0-0") < version_key("1-0") < version_key("1-1")
