"""The dMel baseline and its bit budget, the k-means baselines' refusal of too few training vectors, and
the float64 exactness check of benchmarks/vq.py: on tiny tensors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audio as audio_bench
import image as image_bench
import vq as vq_bench
from audio_baselines import UniformBands, dmel_bits, even_splits, fit_dmel, kmeans_fit_check

M, FPT = 16, 2  # mel channels, frames per token


def grouped_slices(n: int, seed: int) -> torch.Tensor:
    """``[n, FPT*M]`` slices whose mel channels move in 4 independent groups of 4 (plus a little noise)."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.rand(n, 4, generator=g) * torch.tensor([8.0, 6.0, 4.0, 2.0])  # (n, 4)
    mel = groups.repeat_interleave(4, dim=1) + 0.01 * torch.randn(n, M, generator=g)  # (n, M)
    return mel.repeat(1, FPT)  # (n, FPT*M), frame-major


def l1(q: UniformBands, rows: torch.Tensor) -> float:
    return float((q(rows) - rows).abs().mean())


def test_dmel_at_a_prime_budget_is_no_worse_than_at_one_bit_less() -> None:
    fit = grouped_slices(2000, seed=0)
    q13, q12 = fit_dmel(fit, M, FPT, 13), fit_dmel(fit, M, FPT, 12)
    assert q13.bits_per_token == 13 and q12.bits_per_token == 12
    best12 = min(l1(UniformBands(fit, M, FPT, s), fit) for b in range(1, 13) for s in even_splits(12, b))
    assert l1(q12, fit) == pytest.approx(best12)
    assert l1(q13, fit) <= best12
    assert len(q13.bits_per_band) not in (1, 13)  # neither of the two equal splits 13 bits allow


def test_even_splits_cover_every_band_count() -> None:
    for bits in (5, 12, 13):
        for bands in range(1, bits + 1):
            for split in even_splits(bits, bands):
                assert len(split) == bands and sum(split) == bits and max(split) - min(split) <= 1
    assert even_splits(13, 4) == [[4, 3, 3, 3], [3, 3, 3, 4]] and even_splits(13, 13) == [[1] * 13]


def test_four_bands_of_4_3_3_3_bits_put_values_in_their_bins() -> None:
    train = torch.stack([torch.zeros(FPT * M), torch.ones(FPT * M)])  # every band spans [0, 1]
    q = UniformBands(train, M, FPT, [4, 3, 3, 3])
    band = torch.tensor([0.30, 0.30, 0.99, 1.00])  # one value per band of 4 channels
    out = q(band.repeat_interleave(4).repeat(FPT)[None])  # (1, FPT*M)
    want = torch.tensor([4.5 / 16, 2.5 / 8, 7.5 / 8, 7.5 / 8])  # bin 4 of 16; bins 2, 7, 7 (the top one) of 8
    assert torch.allclose(out[0], want.repeat_interleave(4).repeat(FPT))
    below = q(torch.full((1, FPT * M), -3.0))  # below the training range: the lowest bin
    assert torch.allclose(below[0, :4], torch.tensor(0.5 / 16)) and torch.allclose(below[0, 4:M], torch.tensor(0.5 / 8))


def test_the_dmel_budget_never_has_fewer_bits_than_a_code() -> None:
    assert [dmel_bits(k) for k in (2, 32, 1024, 4096, 4097, 5888, 7680, 8192)] == [1, 5, 10, 12, 13, 13, 13, 13]


def test_audio_kmeans_with_fewer_vectors_than_codes_is_refused_in_one_line() -> None:
    kmeans_fit_check(32, 32, "--kmeans-vectors 32")
    with pytest.raises(SystemExit, match=r"^k-means at K = 5888 needs at least 5888 training slices; "
                                         r"--kmeans-vectors 1287 gives 1287$"):
        kmeans_fit_check(5888, 1287, "--kmeans-vectors 1287")


def test_synthetic_mode_refuses_kmeans_on_too_few_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """``benchmarks/audio.py --data``: the train audio gives 10 slices, K = 32: refused before any fit."""
    tok = argparse.Namespace(codebook_size=32, cfg=argparse.Namespace(frames_per_token=FPT, n_mels=M),
                             tokens_per_second=50, sample_rate=16_000)
    monkeypatch.setattr(audio_bench, "load_audio", lambda f, target_rate: torch.zeros(1))
    monkeypatch.setattr(audio_bench, "slices", lambda tok, audio: torch.zeros(5, FPT * M))
    monkeypatch.setattr(audio_bench, "kmeans", lambda *a, **k: pytest.fail("k-means ran"))
    args = argparse.Namespace(data="DATA", kmeans_vectors=100_000, kmeans_iters=1)
    with pytest.raises(SystemExit, match=r"K = 32 needs at least 32 training slices; "
                                         r"--kmeans-vectors 100000 over the slices of DATA/train gives 10$"):
        audio_bench.reconstruction_rows(tok, args, [Path("a.wav"), Path("b.wav")], [], [])  # type: ignore[arg-type]


def test_image_kmeans_with_too_few_crops_is_refused_in_one_line() -> None:
    args = argparse.Namespace(kmeans_crops=5, kmeans_crop=128)
    with pytest.raises(SystemExit, match=r"^k-means at K = 1024 needs at least 1024 patches; --kmeans-crops 5 gives "
                                         r"320 \(64 per 128-px crop\): give --kmeans-crops 16 or more$"):
        image_bench.kmeans_baseline(args, [], Path("."), 1024, 16)


def test_exactness_check_runs_in_row_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    x, codes = torch.randn(300, 8, generator=g), torch.randn(40, 8, generator=g)
    whole = torch.cdist(x.double(), codes.double()).argmin(1)
    seen: list[int] = []
    cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda a, b, **kw: seen.append(a.shape[0]) or cdist(a, b, **kw))
    assert torch.equal(vq_bench.exact_nearest(x, codes, rows=64), whole)
    assert seen == [64, 64, 64, 64, 44]
