"""Speech quality scores of a decoded waveform: STOI and wideband PESQ against its original,
and DNSMOS P.835 (signal, background, overall) of the waveform alone.

Each needs optional packages (``pystoi``; ``pesq``, which builds from source; ``speechmos`` for
the DNSMOS model and ``onnxruntime`` to run it: ``pip install mmtok[bench]``). STOI and PESQ are
NaN where they cannot be given (a clip under 0.41 s or too little speech after STOI drops silent
frames, no utterance for PESQ), so a mean over clips can leave them out and say how many clips it covers.

The waveform scored may differ in length from its original: ``AudioTokenizer.decode`` gives whole
tokens (``n * samples_per_token`` samples, up to one token longer than what was encoded), so STOI and
PESQ first cut or pad it at its end to the original's length (:func:`~mmtok.audio.io.fit_length`), and
``speech_scores(w, tok.decode(tok.encode(w, sample_rate=16000)))`` scores the round trip as it is.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import fit_length

__all__ = ["DNSMOS_POLY", "DNSMOS_WINDOW", "STOI_MIN_SECONDS", "dnsmos", "pesq_wb", "speech_scores",
           "stoi_score"]

STOI_RATE, STOI_HOP, STOI_FRAMES = 10_000, 128, 30  # pystoi: at 10 kHz, frames of 256 every 128, 30 needed
STOI_MIN_SECONDS = (STOI_FRAMES + 2) * STOI_HOP / STOI_RATE  # 0.4096 s: framed twice (silence, STFT), 2 frames lost


def stoi_score(ref: torch.Tensor, deg: torch.Tensor, rate: int = SAMPLE_RATE) -> float:
    """STOI (``pystoi``, not extended) of ``deg`` against ``ref`` (both ``[S]``, ``deg`` cut or padded
    to ``ref``'s length by :func:`~mmtok.audio.io.fit_length`); NaN where too little speech is left once pystoi drops
    the silent frames (it then warns and returns 1e-5, which is no score), where the clip is shorter
    than :data:`STOI_MIN_SECONDS` (too short for that even with no frame dropped; pystoi raises below
    26 ms) and where ``ref`` is digital silence (nothing there to understand: pystoi would give 0)."""
    from pystoi import stoi

    if ref.numel() <= STOI_MIN_SECONDS * rate or not bool(ref.abs().gt(0).any()):
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = float(stoi(ref.double().numpy(), fit_length(deg, ref.numel()).double().numpy(), rate,
                               extended=False))
        except ValueError:  # numpy's AxisError (a ValueError) on a clip with no frame at all
            return math.nan
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return math.nan
    return value


def pesq_wb(ref: torch.Tensor, deg: torch.Tensor, rate: int = SAMPLE_RATE) -> float:
    """Wideband PESQ (``pesq``, mode "wb") of ``deg`` against ``ref`` (``deg`` cut or padded to ``ref``'s
    length by :func:`~mmtok.audio.io.fit_length`); NaN where PESQ finds no utterance."""
    from pesq import pesq

    try:
        return float(pesq(rate, ref.double().numpy(), fit_length(deg, ref.numel()).double().numpy(), "wb"))
    except Exception:  # pesq's NoUtteranceError and friends
        return math.nan


def speech_scores(ref: torch.Tensor, deg: torch.Tensor) -> dict[str, float]:
    """``{"stoi", "pesq_wb"}`` of ``deg`` against ``ref`` at 16 kHz, the scores that could be given
    (a NaN or a missing package leaves its key out); ``deg`` of another length than ``ref`` (a decode
    of whole tokens) is cut or padded at its end to ``ref``'s (:func:`~mmtok.audio.io.fit_length`)."""
    out: dict[str, float] = {}
    for key, fn in (("stoi", stoi_score), ("pesq_wb", pesq_wb)):
        try:
            value = fn(ref, deg)
        except ImportError:
            continue
        if math.isfinite(value):
            out[key] = value
    return out


DNSMOS_WINDOW = 9.01  # seconds the DNSMOS model reads at a time (hop 1 s)
DNSMOS_POLY = {  # the standard non-personalized P.835 calibration of the raw outputs (np.poly1d order)
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}


@functools.lru_cache(maxsize=4)
def _dnsmos_session(threads: int) -> Any:
    import onnxruntime as ort

    spec = importlib.util.find_spec("speechmos")  # its folder only: importing speechmos.dnsmos pulls librosa in
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("DNSMOS needs the model in the speechmos wheel: pip install speechmos onnxruntime")
    model = Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models" / "sig_bak_ovr.onnx"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def dnsmos(wave: torch.Tensor | np.ndarray, *, threads: int = 1) -> dict[str, float]:
    """DNSMOS P.835 ``{"sig", "bak", "ovrl"}`` of mono samples at 16 kHz, as ``speechmos.dnsmos.run``
    computes them: a clip shorter than 9.01 s is doubled until long enough, 9.01 s windows every 1 s
    go through the model, each window's raw scores through :data:`DNSMOS_POLY`, means over windows.
    Samples are clipped to [-1, 1] (the reference refuses others)."""
    x = np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if x.size == 0:
        raise ValueError("dnsmos got an empty clip")
    need = int(DNSMOS_WINDOW * SAMPLE_RATE)
    while x.size < need:
        x = np.concatenate([x, x])
    sess = _dnsmos_session(threads)
    name = sess.get_inputs()[0].name
    scores: dict[str, list[float]] = defaultdict(list)
    for i in range(int(np.floor(x.size / SAMPLE_RATE) - DNSMOS_WINDOW) + 1):
        seg = x[int(i * SAMPLE_RATE) : int((i + DNSMOS_WINDOW) * SAMPLE_RATE)]
        if seg.size < need:  # as the reference: a window cut short by float rounding is dropped
            continue
        raw = sess.run(None, {name: seg[None]})[0][0]  # (3,) sig, bak, ovrl
        for key, value in zip(("sig", "bak", "ovrl"), raw, strict=True):
            scores[key].append(float(np.poly1d(DNSMOS_POLY[key])(value)))
    return {k: float(np.mean(v)) for k, v in scores.items()}
