"""What a vocoder reads and how it is scored: the tokenizer's decoded features, the Griffin-Lim
baseline on the same clips, and the validation figures of :mod:`mmtok.audio.vocoder_train`
(log-mel L1 and multi-resolution STFT losses on fixed segments, STOI and wideband PESQ on fixed
speech clips).

A STOI or PESQ mean covers the same clips at every step: those that can be given the figure at all
(:func:`figures_given`: the clip scored against itself; one too short or silent for STOI, with no
utterance for PESQ, or a package missing is left out of every mean). A clip of those whose decoded
output yields no figure (PESQ finds no utterance in a silent output) counts as a failed clip, the
scale's bottom (:data:`SCORE_FLOOR`), so a worse vocoder never scores better by dropping its worst clips.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.io import fit_length
from mmtok.audio.scores import speech_scores
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder, mel_l1, multi_resolution_stft_loss

__all__ = ["SCORE_FLOOR", "Features", "decoded_features", "evaluate", "figures_given", "griffin_lim_scores",
           "missing_figure"]

Features = Callable[[torch.Tensor], torch.Tensor]  # waveform [B, S] -> log-mel [B, M, S // hop]
SCORE_FLOOR = {"pesq_wb": 1.0, "stoi": 0.0}  # what a clip counts when its decoded output yields no figure
PACKAGES = {"pesq_wb": "pesq", "stoi": "pystoi"}  # the package each figure needs


# --------------------------------------------------------------------------- features


def decoded_features(tok: AudioTokenizer, audio: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
    """What a vocoder reads at inference: ``tok.decode_features(tok.encode(x))`` of each row of
    ``audio [B, S]`` (``S`` a multiple of the tokenizer's samples per token) -> log-mel
    ``[B, M, S // hop]`` on ``audio``'s device, a plain tensor that autograd may save.

    The codes always come from ``tok.encode`` (exactly what inference gives, no gradients). With
    ``grad=True`` their decoding runs under autograd, so gradients reach ``tok``'s log-mel decoder
    (``--train-decoder``); the values are the same either way.
    """
    codes = torch.stack([tok.encode(row, tok.sample_rate) for row in audio])  # (B, n), ordinary tensors
    mel = tok._decode_latent(tok.vq.decode(codes)) if grad else tok.decode_features(codes)  # (B, M, fpt*n)
    return mel[..., : audio.shape[-1] // tok.cfg.hop_length].to(audio.device)


# --------------------------------------------------------------------------- validation


def figures_given(waves: Sequence[torch.Tensor]) -> list[set[str]]:
    """The figures (``stoi``, ``pesq_wb``) each clip can be given at all: those of the clip scored against
    itself, so what the clip alone (its length, its speech) and the installed packages allow."""
    return [set(speech_scores(w, w)) for w in waves]


def missing_figure(figure: str, clips: int, seconds: float) -> str:
    """Why none of the ``clips`` validation clips (files of kind "speech" at least ``seconds`` long) can be
    given ``figure``, in words (for a refusal)."""
    package = PACKAGES[figure]
    try:
        importlib.import_module(package)
    except ImportError:
        return f"it needs the {package} package, which is not installed (pip install {package})"
    if not clips:
        return (f'the validation split holds no file of kind "speech" at least {seconds:g} s long (a manifest row '
                'says it: "kind": "speech"; a --cache holds one version of the manifest: give a new --cache after adding it)')
    return f"the {clips} validation clips are too short or hold too little speech"


def _mean_scores(rows: Sequence[dict[str, float]], given: Sequence[set[str]]) -> dict[str, float]:
    """Each figure's mean over the clips that can be given it (``given``, :func:`figures_given`), a clip whose
    row lacks it counting as :data:`SCORE_FLOOR`; a figure no clip can be given is left out."""
    out = {}
    for key, floor in SCORE_FLOOR.items():
        values = [r.get(key, floor) for r, g in zip(rows, given, strict=True) if key in g]
        if values:
            out[key] = round(float(np.mean(values)), 4)
    return out


def griffin_lim_scores(waves: Sequence[torch.Tensor], tok: AudioTokenizer | None = None, *,
                       given: Sequence[set[str]] | None = None) -> dict[str, Any]:
    """STOI/PESQ of the tokenizer's Griffin-Lim path on the clips' TRUE log-mel (``tok`` None) or on
    ``tok``'s decoded features of them (what ``tok.decode(codes, vocoder="griffin-lim")`` gives):
    the figure to beat, averaged as :func:`evaluate` does (``given``: default :func:`figures_given`)."""
    gl = tok if tok is not None else AudioTokenizer(AudioTokenizerConfig()).eval()
    hop = gl.cfg.hop_length
    rows = []
    for w in waves:
        t = w.numel() // hop
        if tok is None:
            mel = gl.log_mel(w)[:, :t]  # (M, T): the frames AudioTokenizer.decode would hand it
        else:
            mel = decoded_features(tok, w[None].to(tok.device))[0]  # (M, T)
        out = gl.mel_to_wave(mel).cpu()
        out = fit_length(out, w.numel())
        rows.append(speech_scores(w, out))
    means = _mean_scores(rows, figures_given(waves) if given is None else given)
    return {"clips": len(waves), "iterations": gl.cfg.griffin_lim_iters,
            "features": "true" if tok is None else "decoded", **means}


@torch.no_grad()
def evaluate(voc: Vocoder, segments: torch.Tensor, waves: Sequence[torch.Tensor], *, batch: int = 8,
             features: Features | None = None, given: Sequence[set[str]] | None = None) -> dict[str, Any]:
    """Validation figures: log-mel L1 (to the true log-mel) and STFT losses on ``segments``,
    STOI/PESQ on ``waves`` (means over the clips ``given`` says can be given each, default
    :func:`figures_given`; see the module docstring); the vocoder reads ``features(x)`` (default: the
    true log-mel)."""
    was_training = voc.training
    voc.eval()
    dev = voc.window.device
    hop = voc.cfg.hop_length
    mel_l, sc_l, mag_l = [], [], []
    for part in segments.split(batch):
        x = part.to(dev)
        mel = voc.log_mel(x)  # (B, M, T+1)
        y = voc.render(mel[..., : x.shape[-1] // hop] if features is None else features(x))
        sc, mag = multi_resolution_stft_loss(y, x)
        mel_l.append(float(mel_l1(y, mel, voc.filters)) * len(part))
        sc_l.append(float(sc) * len(part))
        mag_l.append(float(mag) * len(part))
    n = len(segments)
    out: dict[str, Any] = {"mel_l1": round(sum(mel_l) / n, 4), "stft_sc": round(sum(sc_l) / n, 4),
                           "stft_logmag": round(sum(mag_l) / n, 4)}
    rows = []
    for w in waves:
        x = w.to(dev)
        mel = voc.log_mel(x)[:, : w.numel() // hop] if features is None else features(x[None])[0]
        rows.append(speech_scores(w, voc.decode(mel).cpu()))
    out.update(_mean_scores(rows, figures_given(waves) if given is None else given))
    voc.train(was_training)
    return out


