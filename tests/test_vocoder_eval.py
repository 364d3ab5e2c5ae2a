"""The vocoder's validation figures: a STOI or PESQ mean covers the same clips at every step."""

from __future__ import annotations

import pytest
import torch

from mmtok.audio import vocoder_eval
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from tests.test_vocoder import voiced

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_clip_whose_output_yields_no_figure_counts_as_failed_and_one_that_never_can_is_left_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    voc = Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1)).eval()
    waves = [torch.from_numpy(voiced(s, seed=i)) for i, s in enumerate((0.5, 0.6, 0.7))]  # their lengths name them
    clip = {w.numel(): i for i, w in enumerate(waves)}

    def scores(ref: torch.Tensor, deg: torch.Tensor) -> dict[str, float]:
        i = clip[ref.numel()]
        if torch.equal(ref, deg):  # the clip against itself: the third can never be given PESQ
            return {"stoi": 1.0, **({"pesq_wb": 4.5} if i < 2 else {})}
        return {"stoi": 0.5, **({"pesq_wb": 3.0} if i == 0 else {})}  # the second's output yields none

    monkeypatch.setattr(vocoder_eval, "speech_scores", scores)
    row = vocoder_eval.evaluate(voc, torch.zeros(1, 3200), waves)
    assert row["pesq_wb"] == (3.0 + 1.0) / 2  # the second counts as PESQ's floor: not 3.0, the one clip left
    assert row["stoi"] == 0.5
    assert vocoder_eval.figures_given(waves) == [{"stoi", "pesq_wb"}, {"stoi", "pesq_wb"}, {"stoi"}]
    # no clip's output yields PESQ: the figure is the floor, not missing (--best-by pesq_wb reads it)
    monkeypatch.setattr(vocoder_eval, "speech_scores", lambda ref, deg: {"stoi": 1.0, "pesq_wb": 4.5}
                        if torch.equal(ref, deg) else {"stoi": 0.2})
    assert vocoder_eval.evaluate(voc, torch.zeros(1, 3200), waves)["pesq_wb"] == 1.0
