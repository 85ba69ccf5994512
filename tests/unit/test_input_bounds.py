"""Input bounds: text longer than any phone number is TOO_LONG and never cached."""

from __future__ import annotations

from collections.abc import Callable

from suppression.e164 import MAX_INPUT_LENGTH, InvalidReason, Normalizer
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import InProcessServer
from tests.samples import make_lists


def test_a_huge_string_is_invalid_and_never_cached(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(make_lists())
    normalizer = server.process.servicer.normalizer
    before = normalizer.cache_info().currsize
    huge = "1" * 3_000_000
    for text in (huge, " (212) 555-0100 " + "x" * MAX_INPUT_LENGTH):
        answer = server.stub.Check(pb.CheckRequest(numbers=[text], default_region="US"), timeout=10)
        assert list(answer.verdicts) == [pb.INVALID]
        assert dict(answer.invalid_reasons) == {0: pb.TOO_LONG}
    batch = [huge[: MAX_INPUT_LENGTH + k] for k in range(1, 40)]
    answer = server.stub.Check(pb.CheckRequest(numbers=batch, default_region="US"), timeout=10)
    assert set(answer.verdicts) == {pb.INVALID}
    assert normalizer.cache_info().currsize == before


def test_the_input_bound_is_far_above_real_numbers() -> None:
    normalizer = Normalizer()
    padded = "  +1 (212) 555-0100 ext. 1234  ".center(MAX_INPUT_LENGTH, " ")
    assert normalizer.normalize(padded, "US") == (12125550100, InvalidReason.VALID)
    assert normalizer.normalize("9" * (MAX_INPUT_LENGTH + 1), "US")[1] is InvalidReason.TOO_LONG
    assert normalizer.cache_info().currsize == 1
