"""A repairing decode keeps every intact code of a damaged image, video or audio and fills only what is lost; a
VectorQuantizer refuses to train on values too large for its float32 statistics, before it learns from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.errors import QuantizerError, StreamError
from mmtok.stream.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = Vocabulary(256, ranges={"image": 64, "audio": 64, "video": 64})
IL = mmtok.Interleaver(VOCAB)
I0, A0, V0 = (VOCAB.range(m).start for m in ("image", "audio", "video"))
TEXT = 65  # "A": the token a generated stream put in a code's (or a mark's) place


def _codes(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, shape, generator=torch.Generator().manual_seed(seed))


def _decode(ids: np.ndarray, il: mmtok.Interleaver = IL) -> Any:
    """The repaired segments, after checking that a strict decode raises where the first repair is."""
    fixed = il.decode(ids, repair=True)
    with pytest.raises(StreamError) as e:
        il.decode(ids)
    assert fixed.repairs and e.value.position == fixed.repairs[0].position
    return fixed


def _at(ids: np.ndarray, token: int, n: int = 0) -> int:
    return int(np.flatnonzero(ids == token)[n])


# --------------------------------------------------------------------------- images


def test_a_text_token_in_place_of_a_first_row_code_keeps_the_16x16_grid() -> None:
    codes = _codes(16, 16)
    ids = IL.encode(["a", {"image_codes": codes}, "b"]).ids.numpy().copy()
    p = _at(ids, IL.BOI) + 1 + 5  # row 0, column 5
    ids[p] = TEXT
    fixed = _decode(ids)
    got = fixed[1]["image_codes"]
    assert got.shape == (16, 16)  # was 16×15: every row cut to the damaged row's 15 codes
    want = codes.clone()
    want[0, 5] = codes[0, 4]  # the first row has no row above: the code before it
    assert torch.equal(got, want) and fixed[2] == {"text": "b"}
    assert [str(r) for r in fixed.repairs] == [
        f"position {p}: expected an image code, <eol> or <eoi>, got text:65; replaced it with image code "
        f"{int(codes[0, 4])}"]


def test_a_code_lost_in_a_later_row_takes_the_code_above_and_the_rest_keep_their_place() -> None:
    codes = _codes(16, 16, seed=1)
    ids = IL.encode([{"image_codes": codes}]).ids.numpy().copy()
    ids[_at(ids, IL.BOI) + 1 + 3 * 17 + 7] = VOCAB.range("audio").start + 9  # another medium's code
    got = _decode(ids)[0]["image_codes"]
    want = codes.clone()
    want[3, 7] = codes[2, 7]
    assert torch.equal(got, want)  # one code differs (it was nine: the rest of the row shifted left)
    first = IL.encode([{"image_codes": codes}]).ids.numpy().copy()
    first[_at(first, IL.BOI) + 1] = TEXT  # row 0, column 0: the code after it
    want = codes.clone()
    want[0, 0] = codes[0, 1]
    assert torch.equal(_decode(first)[0]["image_codes"], want)


def test_a_row_whose_eol_was_replaced_or_lost_is_split_back() -> None:
    codes = _codes(16, 16, seed=2)
    clean = IL.encode([{"image_codes": codes}, "z"]).ids.numpy()
    eol = _at(clean, IL.EOL, 4)
    replaced = clean.copy()
    replaced[eol] = TEXT
    fixed = _decode(replaced)
    assert torch.equal(fixed[0]["image_codes"], codes) and fixed[1] == {"text": "z"}  # was 15×32
    assert [(r.position, r.action) for r in fixed.repairs] == [(eol, "ended the row there")]
    lost = _decode(np.delete(clean, eol))
    assert torch.equal(lost[0]["image_codes"], codes)
    assert [r.action for r in lost.repairs] == ["split it into 2 rows"]


def test_text_after_an_image_whose_eoi_was_replaced_is_text_again() -> None:
    codes = _codes(3, 4, seed=3)
    ids = IL.encode([{"image_codes": codes}, "bcd"]).ids.numpy().copy()
    ids[_at(ids, IL.EOI)] = TEXT
    fixed = _decode(ids)
    assert torch.equal(fixed[0]["image_codes"], codes)
    assert fixed[1] == {"text": "Abcd"}  # was dropped token by token
    assert [r.action for r in fixed.repairs] == ["closed the image"]


class GridImages:
    """An image tokenizer whose codes are 2×3 grids."""

    codebook_size = 64
    fingerprint = "grid-2x3"
    grid = (2, 3)

    def encode(self, x: Any) -> torch.Tensor:
        return torch.as_tensor(x)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float()


def test_the_tokenizers_grid_settles_rows_that_disagree() -> None:
    codes = _codes(2, 3, seed=4)
    il = mmtok.Interleaver(None, image=GridImages())
    ids = il.encode([{"image_codes": codes}]).ids.numpy()
    short = np.delete(ids, _at(ids, il.BOI) + 2)  # row 0 lost a code: 2 codes, then 3
    assert IL.decode(short, repair=True)[0]["image_codes"].shape == (2, 2)  # no grid known: the first row's
    got = _decode(short, il)[0]["image_codes"]
    assert got.shape == (2, 3) and torch.equal(got[1], codes[1])  # the intact row kept whole
    assert got[0].tolist() == [int(codes[0, 0]), int(codes[0, 2]), int(codes[0, 2])]


# --------------------------------------------------------------------------- videos and audio


def test_a_video_keeps_its_shape_and_fills_from_the_frame_before() -> None:
    codes = _codes(4, 3, 3, seed=5)
    ids = IL.encode([{"video_codes": codes}]).ids.numpy()
    frame1 = _at(ids, IL.EOF, 0) + 1
    hit = ids.copy()
    hit[frame1 + 1] = TEXT  # frame 1, row 0, column 1
    want = codes.clone()
    want[1, 0, 1] = codes[0, 0, 1]
    assert torch.equal(_decode(hit)[0]["video_codes"], want)
    top = ids.copy()
    top[_at(ids, IL.BOV) + 1] = TEXT  # frame 0, row 0, column 0: the code after it
    want = codes.clone()
    want[0, 0, 0] = codes[0, 0, 1]
    assert torch.equal(_decode(top)[0]["video_codes"], want)
    merged = ids.copy()
    merged[_at(ids, IL.EOF, 1)] = TEXT  # frames 1 and 2 run together
    fixed = _decode(merged)
    assert torch.equal(fixed[0]["video_codes"], codes)  # was 3 frames of 6 rows, two of them made up
    assert [r.action for r in fixed.repairs] == ["dropped it", "split it into 2 frames"]


def test_audio_keeps_its_length_where_codes_were_replaced() -> None:
    codes = _codes(9, seed=6)
    ids = IL.encode(["x", {"audio_codes": codes}, "y"]).ids.numpy()
    boa = _at(ids, IL.BOA)
    for k, fill in ((4, 3), (0, 1), (8, 7)):  # middle, first and last code: the code before (after, first)
        hit = ids.copy()
        hit[boa + 1 + k] = TEXT
        fixed = _decode(hit)
        want = codes.clone()
        want[k] = codes[fill]
        assert torch.equal(fixed[1]["audio_codes"], want), k  # was one code short, the rest a step early
        assert [r.action for r in fixed.repairs] == [f"replaced it with audio code {int(codes[fill])}"]
    unclosed = ids.copy()
    unclosed[_at(ids, IL.EOA)] = TEXT
    fixed = _decode(unclosed)
    assert torch.equal(fixed[1]["audio_codes"], codes) and fixed[2] == {"text": "Ay"}


# --------------------------------------------------------------------------- the quantizer


def _state(vq: mmtok.VectorQuantizer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in vq.state_dict().items()}


@pytest.mark.parametrize("scale", [1e37, 1e20])
def test_training_on_values_too_large_for_float32_statistics_is_refused_and_nothing_is_lost(scale: float) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8, kmeans_init=False)).train()
    vq(torch.randn(64, 4))
    before = _state(vq)
    huge = torch.full((64, 4), scale) * (1 + 0.01 * torch.randn(64, 4))
    with pytest.raises(QuantizerError, match=r"^VectorQuantizer input has values up to .*too large for the "
                       r"codebook's float32 statistics .*normalise the features first .*the codebook is unchanged$"):
        vq(huge)  # 1e37: the EMA sums overflowed to inf; 1e20: the squared distances, codes merged silently
    after = _state(vq)
    assert all(torch.equal(before[k], after[k]) for k in before)
    vq(torch.randn(64, 4))  # the next step learns as before (it used to blame the codebook for the inf)
    assert bool(torch.isfinite(vq.ema_sum).all() and torch.isfinite(vq.embed).all())
    assert vq.eval().encode(huge).shape == (64,)  # inference changes no state: not refused


def test_kmeans_initialisation_collects_no_refused_vectors() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)).train()
    with pytest.raises(QuantizerError, match="too large for the codebook's float32 statistics"):
        vq(torch.full((64, 4), 1e37))
    vq(torch.randn(64, 4))
    assert bool(vq.initted) and float(vq.embed.abs().max()) < 10


def test_a_projection_into_huge_lookup_vectors_and_a_rebalance_are_refused_too() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8, codebook_dim=2, kmeans_init=False)).train()
    with torch.no_grad():
        vq.project_in.weight.fill_(1e25)
    before = _state(vq)
    with pytest.raises(QuantizerError, match=r"lookup vectors \(the input after its projection\) have values up to"):
        vq(torch.ones(8, 4))
    assert all(torch.equal(before[k], v) for k, v in _state(vq).items())
    plain = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8, kmeans_init=False))
    plain(torch.randn(64, 4))
    before = _state(plain)
    with pytest.raises(QuantizerError, match=r"^VectorQuantizer input has values up to 1e\+37, too large"):
        plain(torch.full((4, 4), 1e37, dtype=torch.float64))  # float64 that fits float32: cast, not projected
    with pytest.raises(QuantizerError, match="too large for the codebook's float32 statistics"):
        plain.rebalance(torch.full((64, 4), 1e37))  # used to blame the codebook: "nearest_code codebook has NaN/inf"
    assert all(torch.equal(before[k], v) for k, v in _state(plain).items())


def test_a_diverging_encoder_too_large_to_quantize_is_not_called_non_finite(tmp_path: Path) -> None:
    from mmtok.core.divergence import diverging_forward
    from mmtok.core.errors import TrainingError

    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)).train()
    with pytest.raises(TrainingError) as err, diverging_forward(step=5, state_dir=tmp_path, lr=0.1):
        vq(torch.full((16, 4), 1e30))
    said = str(err.value)  # before: "... the encoder's output is not finite (... too large ...)"
    assert said.startswith("training diverged at step 5: the encoder's output is too large to quantize (")
    assert "not finite" not in said and said.endswith("lower --lr (0.1 in this run)")
