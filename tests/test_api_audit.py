"""The public API as users script it: a Stream pickles without its tokenizers, text ids outside the text range
are refused, and loss weights are checked once for the Interleaver and the packed dataset."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import mmtok
from mmtok.core.errors import DocumentError, StreamError
from mmtok.stream.vocab import loss_weight_table


class _Text:
    """A text tokenizer whose vocab_size leaves out an id it emits (as one with added tokens may)."""

    vocab_size = 1000
    fingerprint = "text-1000"

    def __init__(self, extra: int | float = 1002) -> None:
        self.extra = extra

    def encode(self, s: str) -> list:
        return [self.extra, *s.encode()]

    def decode(self, ids: list, errors: str = "replace") -> str:
        return bytes(i for i in ids if i < 256).decode(errors=errors)


def test_a_pickled_stream_is_about_its_ids_and_keeps_them() -> None:
    il = mmtok.Interleaver(None, image=mmtok.load("image"))
    s = il.encode(["hello"])
    blob = pickle.dumps(s)
    assert len(blob) < 20_000  # the image tokenizer alone weighs megabytes
    back = pickle.loads(blob)
    assert back.interleaver is None and back.ids.tolist() == s.ids.tolist()
    assert copy.deepcopy(s).interleaver is il and s.interleaver is il  # a copy keeps the interleaver; a pickle does not
    assert il.pretty(back) == "hello"


@pytest.mark.parametrize("extra", [1002, 1000, -1, 1001.0])
def test_text_ids_outside_the_text_range_are_refused(extra: int | float) -> None:
    il = mmtok.Interleaver(None, text=_Text(extra))
    with pytest.raises((DocumentError, StreamError), match=r"^segment 0: the text tokenizer"):
        il.encode(["hi"])
    assert mmtok.Interleaver(None, text=_Text(999)).encode(["hi"]).ids[1].item() == 999


@pytest.mark.parametrize("bad", [math.nan, -3.0, math.inf, "2", True])
def test_a_loss_weight_must_be_a_finite_number_at_least_zero(bad: object) -> None:
    with pytest.raises(ValueError, match=r"loss_weights\['text'\] must be a finite number ≥ 0"):
        loss_weight_table({"text": bad})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="must be a finite number"):
        mmtok.Interleaver(None, loss_weights={"text": bad})  # type: ignore[dict-item]
    weights, table = loss_weight_table({"image": 0, "audio": np.float32(0.5)})
    assert weights["image"] == 0.0 and table.dtype == np.float32 and sorted(set(table.tolist())) == [0.0, 0.5, 1.0]


def test_many_codes_on_one_point_are_collapsed_before_pairs_are_sought(monkeypatch: pytest.MonkeyPatch) -> None:
    """4,085 of 4,096 codes on one point (a k-means init on a batch of silence): the near-pair search sees the
    12 distinct points, not millions of pairs of copies, and every copy maps to the first of them."""
    import torch

    from mmtok.vq import search

    seen: list[int] = []
    close_pairs = search._close_pairs

    def counted(cb: torch.Tensor, tol: float) -> torch.Tensor:
        seen.append(cb.shape[0])
        return close_pairs(cb, tol)

    monkeypatch.setattr(search, "_close_pairs", counted)
    cb = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0))
    cb[5:4090] = cb[5]
    canon = search.canonical_codes(cb)
    assert seen == [12]
    assert canon[5:4090].eq(5).all() and canon[:5].tolist() == [0, 1, 2, 3, 4] and canon[4090:].tolist() == list(range(4090, 4096))
