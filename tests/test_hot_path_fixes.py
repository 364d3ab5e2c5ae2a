"""Hot paths do their checks' work only where it is needed, with the same results. De-interleaving: well-formed
audio looks up no extent (the stream-wide lookups a damaged segment needs), the whole rows of a damaged grid are not
mended, a vote of one value settles a grid's width or height without counting. A VQ step's value check: one
``aminmax`` per tensor and two small kernels for all (each kernel a launch on a GPU)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmtok
import mmtok.stream.grids as grids
import mmtok.stream.parse as parse
from mmtok.core.errors import QuantizerError
from mmtok.stream.mend import most_common
from mmtok.stream.vocab import Vocabulary
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = Vocabulary(256, ranges={"image": 64, "audio": 64, "video": 64})
IL = mmtok.Interleaver(VOCAB)


def counted(real: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)
    return call


@pytest.mark.parametrize("repair", [False, True])
def test_well_formed_audio_looks_up_no_extent(repair: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(parse, "extent", counted(parse.extent, calls))
    doc = ["hi ", {"audio_codes": torch.tensor([5, 6, 7])}, " and ", {"audio_codes": torch.tensor([9])}]
    got = IL.decode(IL.encode(doc), repair=repair)
    assert [s["audio_codes"].tolist() for s in got if "audio_codes" in s] == [[5, 6, 7], [9]]
    assert calls == []


def test_damaged_audio_still_keeps_its_codes_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(parse, "extent", counted(parse.extent, calls))
    ids = IL.encode([{"audio_codes": torch.tensor([5, 6, 7])}]).ids.numpy().copy()
    ids[3] = ord("x")  # a text byte in the place of code 6
    got = IL.decode(ids, repair=True)
    assert got[0]["audio_codes"].tolist() == [5, 5, 7]
    assert [r.action for r in got.repairs] == ["replaced it with audio code 5"]
    assert calls == [1]


def test_only_the_damaged_row_of_a_grid_is_mended(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(grids, "mend_row", counted(grids.mend_row, calls))
    codes = torch.arange(12).reshape(4, 3)
    ids = IL.encode([{"image_codes": codes}]).ids.numpy().copy()
    ids[2 + 4 + 1] = ord("x")  # <bos> <boi>, row 0 (3 codes, <eol>), then row 1's middle code
    got = IL.decode(ids, repair=True)
    want = codes.clone()
    want[1, 1] = 1  # the code above it
    assert torch.equal(got[0]["image_codes"], want)
    assert got[0]["image_codes"].dtype == torch.int64
    assert [r.action for r in got.repairs] == ["replaced it with image code 1"]
    assert calls == [1]


def test_most_common_is_the_rule_it_states_for_one_value_and_for_many() -> None:
    def rule(votes: list[int], hint: int | None, whole: bool) -> int | None:
        counts = {v: votes.count(v) for v in votes}  # in the order first voted
        tied = [v for v, c in counts.items() if c == max(counts.values())]
        if whole and any(all(x % v == 0 for x in votes) for v in tied):
            tied = [v for v in tied if all(x % v == 0 for x in votes)]
        return hint if hint in tied else (tied[0] if tied else None)

    rng = random.Random(0)
    for _ in range(400):
        votes = [rng.choice([2, 3, 4, 6]) for _ in range(rng.randint(0, 5))]
        votes = votes if rng.random() < 0.5 else votes[:1] * len(votes)
        hint, whole = rng.choice([None, 2, 3, 4, 6]), rng.random() < 0.5
        got = most_common(np.array(votes, np.int64), hint, whole=whole)
        assert got == rule(votes, hint, whole) and (got is None or type(got) is int)


class Kernels(TorchDispatchMode):
    """The aten ops that compute (a kernel each on a GPU): views, detach and host reads left out."""

    FREE = ("detach", "view", "_local_scalar_dense", "alias")

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not any(str(func).startswith(f"aten.{free}.") for free in self.FREE):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("projected", [False, True])
def test_a_training_steps_value_check_launches_an_aminmax_per_tensor_and_two_kernels(projected: bool) -> None:
    torch.manual_seed(0)
    cfg = VQConfig(dim=8, codebook_size=16, kmeans_init=False, **({"codebook_dim": 4} if projected else {}))
    vq = VectorQuantizer(cfg).train()
    x = torch.randn(32, 8)
    z = vq._to_lookup(x)
    with Kernels() as k:
        vq._finite(x, z, training=True)
    tensors = 3 if projected else 2  # the codebook, the lookup vectors (and the input, when they are other values)
    assert k.ops.count("aten.aminmax.default") == tensors
    assert len(k.ops) == tensors + 2, k.ops
    for bad, said in ((float("nan"), "NaN/inf"), (1e30, "too large for the codebook's float32 statistics")):
        x[3, 1] = bad
        with pytest.raises(QuantizerError, match=said):
            vq(x)
