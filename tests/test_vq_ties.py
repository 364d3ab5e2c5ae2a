"""Codes that float32 scores cannot tell apart: the same answer whatever the arithmetic.

Near a cluster of codes a few 1e-4 apart (the shipped audio codebook has one where silence falls),
float32 scores round to ties, and the winner used to depend on the thread count or the CPU's vector
width. ``exact_ties`` settles those rows in float64; twins (codes on one point) give their first index.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.vq.quantizer import VectorQuantizer, VQConfig
from mmtok.vq.search import canonical_codes, nearest_code

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"


def _clustered(k: int, d: int, *, cosine: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A codebook with 8 tight clusters of 6 codes (1e-4 apart, one exact twin each) and vectors on them."""
    g = torch.Generator().manual_seed(seed)
    cb = torch.randn(k, d, generator=g) * 3
    centres = torch.randn(8, d, generator=g) * 3
    slots = torch.randperm(k, generator=g)[:48].view(8, 6)
    for c, s in zip(centres, slots, strict=True):
        cb[s] = c + 1e-4 * torch.randn(6, d, generator=g)
        cb[s[1]] = cb[s[0]]  # an exact twin
    x = torch.cat([centres[i] + 1e-6 * torch.randn(40, d, generator=g) for i in range(8)] +
                  [torch.randn(200, d, generator=g) * 3])
    if cosine:
        cb, x = torch.nn.functional.normalize(cb, dim=1), torch.nn.functional.normalize(x, dim=1)
    return cb, x


def _float64_nearest(x: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x.double(), cb.double()).pow(2)  # argmin returns the first of equal minima
    return d.argmin(1)


@pytest.mark.parametrize(("k", "cosine"), [(1024, False), (1024, True), (100, False)])  # 100: the plain argmax
def test_exact_ties_give_the_float64_answer_and_the_first_of_equals(k: int, cosine: bool) -> None:
    cb, x = _clustered(k, 16, cosine=cosine)
    want = _float64_nearest(x, cb)
    got = nearest_code(x, cb, cosine=cosine, exact_ties=True, chunk_size=64)
    assert torch.equal(got, want)
    plain = nearest_code(x, cb, cosine=cosine, chunk_size=64)
    assert torch.equal(plain[320:], want[320:])  # away from the clusters nothing changes


@pytest.mark.parametrize("cosine", [False, True])
def test_the_runner_up_pass_and_one_late_settling_give_the_float64_answer(monkeypatch: pytest.MonkeyPatch,
                                                                           cosine: bool) -> None:
    """The GPU's way (no two-level argmax: the best score masked, the runner-up the maximum of the rest; the
    suspect rows of every block settled together at the end, their scores worked out again) on the CPU."""
    import mmtok.vq.search as search

    cb, x = _clustered(1024, 16, cosine=cosine, seed=5)
    want = _float64_nearest(x, cb)
    monkeypatch.setattr(search, "_grouped", lambda scores, rows: None)
    for chunk in (None, 7, 64):  # one block; settling pieces of 3 rows; several blocks
        assert torch.equal(nearest_code(x, cb, cosine=cosine, exact_ties=True, chunk_size=chunk), want)
    one = torch.randn(1, 16)
    assert nearest_code(x[:5], one, exact_ties=True).tolist() == [0] * 5  # one code: no runner-up at all


def test_exact_ties_do_not_depend_on_the_thread_count_or_the_block_size() -> None:
    cb, x = _clustered(2048, 16, cosine=True, seed=3)
    before = torch.get_num_threads()
    try:
        answers = []
        for threads, chunk in ((1, 7), (2, 64), (1, None)):
            torch.set_num_threads(threads)
            answers.append(nearest_code(x, cb, cosine=True, exact_ties=True, chunk_size=chunk))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, answers[0]) for a in answers)


def test_twins_are_one_code_and_the_table_follows_the_codebook() -> None:
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=64, kmeans_init=False)).eval()
    with torch.no_grad():
        vq.embed[[5, 9, 40]] = vq.embed[20].clone()  # four codes on one point
    assert canonical_codes(vq.embed).tolist()[5] == 5
    assert {int(vq.encode(vq.embed[i][None])[0]) for i in (5, 9, 20, 40)} == {5}
    assert torch.equal(vq(vq.embed[[9, 40]]).indices, torch.tensor([5, 5]))  # forward outside training too
    with torch.no_grad():
        vq.embed[5] += 1.0  # code 5 moves away: the twins of 20 are now 9, 20 and 40
    assert int(vq.encode(vq.embed[40][None])[0]) == 9


def test_shipped_audio_codes_are_the_same_with_one_thread_or_two() -> None:
    """Silence falls on the shipped audio codebook's tight cluster: these codes once changed with the threads."""
    tok = mmtok.load("audio")
    wave = mmtok.load_audio(EXAMPLES / "speech_en.wav", target_rate=16000)
    before = torch.get_num_threads()
    try:
        codes = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            codes.append(tok.encode(wave, sample_rate=16000))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(codes[0], codes[1])
    twins = canonical_codes(tok.vq.embed, cosine=True)
    assert int((twins != torch.arange(twins.numel())).sum()) == 41  # 41 codes that are twins of 3 others
    assert not torch.isin(codes[0], (twins != torch.arange(twins.numel())).nonzero().flatten()).any()
    from mmtok.info import describe

    assert describe("audio")["twin_codes"].startswith("41 ") and "twin_codes" not in describe("image")


def test_a_codebook_made_under_inference_mode_works_and_is_followed() -> None:
    """Tensors made under inference mode keep no version counter; the twin table goes by their contents."""
    with torch.inference_mode():
        vq = VectorQuantizer(VQConfig(dim=8, codebook_size=64, kmeans_init=False)).eval()
        vq.embed[[5, 9]] = vq.embed[20].clone()
        assert vq.encode(vq.embed[[9, 20]]).tolist() == [5, 5]
        vq.embed[5] += 1.0
        assert vq.encode(vq.embed[[9, 20]]).tolist() == [9, 9]
        tok = mmtok.load("image")
        assert torch.equal(tok.encode(EXAMPLES / "coffee.jpg"), mmtok.load("image").encode(EXAMPLES / "coffee.jpg"))


def test_the_twin_table_follows_a_write_through_data() -> None:
    """``embed.data.copy_`` (or a write to a ``.data`` alias) leaves the version counter alone: the table still
    follows the codes, so a code moved away is no twin any more."""
    vq = VectorQuantizer(VQConfig(dim=2, codebook_size=4, kmeans_init=False)).eval()
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))  # codes 1 and 2 are twins
    assert vq.twin_table().tolist() == [0, 1, 1, 3]
    vq.embed.data.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 1.0]]))  # code 2 moves away
    x = torch.tensor([[5.0, 5.0], [1.0, 0.0]])
    assert vq.twin_table().tolist() == [0, 1, 2, 3]
    assert vq.encode(x).tolist() == vq(x).indices.tolist() == [2, 1]
    vq.embed.data[2] = vq.embed[1]  # twins again
    assert vq.encode(x).tolist() == [1, 1]
