"""Speech quality scores of a decoded waveform against its original: STOI and wideband PESQ.

Both need optional packages (``pystoi``; ``pesq``, which builds from source); each score is
NaN where it cannot be given (too little speech after STOI drops silent frames, no utterance
for PESQ), so a mean over clips can leave it out and say how many clips it covers.
"""

from __future__ import annotations

import math
import warnings

import torch

from mmtok.audio.io import SAMPLE_RATE

__all__ = ["pesq_wb", "speech_scores", "stoi_score"]


def stoi_score(ref: torch.Tensor, deg: torch.Tensor, rate: int = SAMPLE_RATE) -> float:
    """STOI (``pystoi``, not extended) of ``deg`` against ``ref`` (both ``[S]``); NaN where too
    little speech is left once pystoi drops the silent frames (it then warns and returns 1e-5,
    which is no score)."""
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(ref.double().numpy(), deg.double().numpy(), rate, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return math.nan
    return value


def pesq_wb(ref: torch.Tensor, deg: torch.Tensor, rate: int = SAMPLE_RATE) -> float:
    """Wideband PESQ (``pesq``, mode "wb") of ``deg`` against ``ref``; NaN where PESQ finds no utterance."""
    from pesq import pesq

    try:
        return float(pesq(rate, ref.double().numpy(), deg.double().numpy(), "wb"))
    except Exception:  # pesq's NoUtteranceError and friends
        return math.nan


def speech_scores(ref: torch.Tensor, deg: torch.Tensor) -> dict[str, float]:
    """``{"stoi", "pesq_wb"}`` of ``deg`` against ``ref`` at 16 kHz, the scores that could be given
    (a NaN or a missing package leaves its key out)."""
    out: dict[str, float] = {}
    for key, fn in (("stoi", stoi_score), ("pesq_wb", pesq_wb)):
        try:
            value = fn(ref, deg)
        except ImportError:
            continue
        if math.isfinite(value):
            out[key] = value
    return out
