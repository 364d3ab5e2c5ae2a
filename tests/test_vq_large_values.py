"""Values near float32's maximum: the search's scores would overflow float32 (the first overflowing code won
whatever was nearest), so the search runs in float64 there; k-means sums and errors likewise."""

from __future__ import annotations

import torch

from mmtok.vq.kmeans import kmeans, lloyd, lloyd_step
from mmtok.vq.quantizer import VectorQuantizer, VQConfig
from mmtok.vq.search import nearest_code, overflows_float32_scores


def _truth(x: torch.Tensor, codebook: torch.Tensor) -> list[int]:
    """The nearest codes by float64 scores x·c - |c|²/2 (exact at these magnitudes)."""
    c = codebook.double()
    return (x.double() @ c.t() - c.pow(2).sum(1) / 2).argmax(1).tolist()


def _quantizer(seed: int = 0) -> VectorQuantizer:
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False)).eval()
    with torch.no_grad():
        vq.embed.copy_(torch.randn(8, 4, generator=torch.Generator().manual_seed(seed)))
    return vq


def test_encode_of_huge_input_gives_the_nearest_codes() -> None:
    vq = _quantizer()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * 1e38
    assert vq.encode(x).tolist() == _truth(x, vq.embed)
    assert len(set(vq.encode(x).tolist())) > 1  # not every row sent to one overflowing code


def test_eval_forward_of_huge_input_gives_the_nearest_codes() -> None:
    vq = _quantizer(2)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(3)).mul(1e38).clamp(-3e38, 3e38)
    assert vq(x).indices.tolist() == _truth(x, vq.embed)


def test_nearest_code_with_a_huge_codebook() -> None:
    g = torch.Generator().manual_seed(4)
    codebook, x = torch.randn(16, 4, generator=g) * 1e37, torch.randn(50, 4, generator=g) * 1e37
    assert nearest_code(x, codebook).tolist() == _truth(x, codebook)
    assert nearest_code(x, codebook, exact_ties=True).tolist() == _truth(x, codebook)


def test_ordinary_values_search_as_before_either_way() -> None:
    g = torch.Generator().manual_seed(5)
    codebook, x = torch.randn(256, 8, generator=g), torch.randn(500, 8, generator=g)
    assert torch.equal(nearest_code(x, codebook), nearest_code(x, codebook, wide=True))
    assert not overflows_float32_scores(1e17, 256) and overflows_float32_scores(1e18, 256)


def test_kmeans_of_huge_rows_gives_finite_centers() -> None:
    g = torch.Generator().manual_seed(0)
    small = torch.cat([torch.randn(50, 2, generator=g) * 0.1 + c for c in (0.0, 10.0)])
    centers, counts = kmeans(small * 1e37, 2, 5, generator=torch.Generator().manual_seed(1))
    assert bool(torch.isfinite(centers).all())
    assert sorted(round(float(c) / 1e37) for c in centers[:, 0]) == [0, 10]
    assert sorted(counts.tolist()) == [50.0, 50.0]


def test_lloyd_of_huge_rows_reseeds_on_real_rows() -> None:
    rows = torch.tensor([[0.0], [0.1], [3.0], [3.1]]) * 1e38
    centers, counts = lloyd(rows, torch.tensor([[0.0], [0.05e38], [-3e38]]), 3)  # the last code gets no rows
    assert bool(torch.isfinite(centers).all())
    assert counts.sum().item() == 4 and (counts > 0).all()


def test_weighted_lloyd_step_of_huge_rows() -> None:
    rows = torch.tensor([[1.0], [3.0], [10.0]]) * 1e37
    step = lloyd_step(rows, torch.tensor([[1.0], [10.0]]) * 1e37, weights=torch.tensor([1.0, 3.0, 1.0]))
    assert step.idx.tolist() == [0, 0, 1]
    assert torch.allclose(step.centers.double().flatten() / 1e37, torch.tensor([2.5, 10.0], dtype=torch.float64))
    assert bool(torch.isfinite(step.error).all()) and bool(torch.isfinite(step.row_error).all())


def test_too_large_values_are_their_own_error() -> None:
    import pytest

    from mmtok.core.errors import QuantizerError, QuantizerOverflowError

    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False))
    with pytest.raises(QuantizerOverflowError, match="too large for the codebook's float32 statistics"):
        vq(torch.full((3, 4), 1e37))
    with pytest.raises(QuantizerOverflowError):
        vq.eval().encode(torch.full((3, 4), 1e300, dtype=torch.float64))  # past float32 itself
    with pytest.raises(QuantizerError) as nan:
        vq.encode(torch.full((3, 4), float("nan")))
    assert not isinstance(nan.value, QuantizerOverflowError)


def test_a_trainer_tells_overflow_from_nan_by_the_error_not_its_words(tmp_path) -> None:
    import pytest

    from mmtok.core.divergence import diverging_forward
    from mmtok.core.errors import QuantizerError, QuantizerOverflowError, TrainingError

    for error, state in ((QuantizerOverflowError("values up to 1e30"), "too large to quantize"),
                         (QuantizerError("3 NaN/inf values; far too large a share"), "not finite")):
        with pytest.raises(TrainingError) as said, diverging_forward(step=5, state_dir=tmp_path, lr=0.1):
            raise error
        assert f"the encoder's output is {state} (" in str(said.value)
