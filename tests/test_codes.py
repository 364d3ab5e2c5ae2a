"""The one integer-codes check (mmtok.core.codes) that the tokenizers and the interleaver share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmtok.core.codes import integer_codes


class Bad(ValueError):
    pass


@pytest.mark.parametrize("x", [[1, 2, 3], np.array([1, 2, 3], np.uint8), torch.tensor([1, 2, 3], dtype=torch.uint16),
                               torch.tensor([1, 2, 3], dtype=torch.int32), np.array([1, 2, 3], np.uint64)])
def test_every_integer_kind_becomes_int64(x: object) -> None:
    out = integer_codes(x, what="codes", error=Bad, size=4)
    assert out.dtype == torch.int64 and out.tolist() == [1, 2, 3]


@pytest.mark.parametrize(("x", "message"), [
    (torch.tensor([0.0, 1.0]), "must be integers, got dtype float32"),
    (torch.tensor([True, False]), "must be integers, got dtype bool"),
    (np.array([1 + 2j]), "must be integers, got dtype complex128"),
    ([[1, 2], [3]], "rectangular array of integers"),
    ([1, "a"], "must be integers, got dtype <U21"),
    ([0, 4], r"must be in 0..3, got index 4 \(values 0..4\)"),
    ([-1, 2], r"got index -1"),
    (torch.tensor([0, 2**64 - 1], dtype=torch.uint64), "got index 18446744073709551615"),  # no wrap to -1
])
def test_what_is_refused_and_how_it_is_named(x: object, message: str) -> None:
    with pytest.raises(Bad, match=message):
        integer_codes(x, what="codes", error=Bad, size=4)


def test_the_type_error_can_differ_and_empty_lists_pass() -> None:
    with pytest.raises(TypeError, match="codes must be integers"):
        integer_codes([0.5], what="codes", error=Bad, dtype_error=TypeError)
    assert integer_codes([], what="codes", error=Bad, size=4).shape == (0,)
    big = integer_codes([10**6], what="codes", error=Bad)  # no size: no range check
    assert big.tolist() == [10**6]


@pytest.mark.parametrize("x", [np.array([1, 2**63], np.uint64), torch.tensor([1, 2**63], dtype=torch.uint64),
                               [2**63]])
def test_unsigned_values_past_int64_are_refused_without_a_size(x: object) -> None:
    with pytest.raises(Bad, match=r"codes must fit in int64 \(at most 9223372036854775807\), got 9223372036854775808$"):
        integer_codes(x, what="codes", error=Bad)
