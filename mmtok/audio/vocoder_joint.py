"""Stage 2 with the tokenizer's log-mel decoder trained too (``--train-decoder``).

In plain stage 2 the tokenizer is frozen: its decoded log-mel is computed without gradients and
only the vocoder learns to read it. With ``--train-decoder`` the waveform losses also reach the
tokenizer's log-mel decoder (:class:`~mmtok.audio.model.MelDecoder`), so the decoder may learn to
write what the vocoder renders best. The encoder and the codebook stay frozen: **the codes do not
change**, only what they decode to (the vocabulary fingerprint does change, as it covers the
decoder). An anchor term, ``--decoder-anchor W`` × the tokenizer's own reconstruction loss (log-mel
L1 in units of a typical feature std), keeps the decoded features a log-mel, so Griffin-Lim and
the baselines that share the vocoder keep reading what they expect.

The decoder's weights and its half of the optimizer live in the run's train-state (extra tensors
under ``tok_decoder.``), so ``--resume`` continues both; each checkpoint also writes the tuned
tokenizer as ``RUN/tokenizer/`` (and ``RUN/best-tokenizer/`` beside ``RUN/best/``), which
``--attach OUT --vocoder RUN/best`` joins into one checkpoint (``--tokenizer`` left out takes
``RUN/best-tokenizer``; the vocoder's provenance records that tokenizer's fingerprint, so the
tokenizer of another step is refused).

>>> from mmtok.audio.config import AudioTokenizerConfig
>>> from mmtok.vq.config import VQConfig
>>> tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8))
>>> tuning = DecoderTuning(tok, anchor=1.0)
>>> mel = tuning.features(torch.randn(2, 3200) * 0.1)          # 10 tokens of 2 frames each
>>> tuple(mel.shape), mel.requires_grad, tok.vq.embed.requires_grad
((2, 80, 20), True, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_eval import decoded_features
from mmtok.core.errors import CheckpointError
from mmtok.core.module_io import save_module

__all__ = ["PREFIX", "DecoderTuning"]

PREFIX = "tok_decoder."  # the decoder's tensors in the vocoder run's train-state


class DecoderTuning:
    """The trainable half of a joint stage-2 run: the tokenizer's log-mel decoder, everything else frozen."""

    def __init__(self, tok: AudioTokenizer, *, anchor: float) -> None:
        if anchor < 0:
            raise ValueError(f"--decoder-anchor must be ≥ 0, got {anchor}")
        self.tok, self.anchor = tok.eval(), anchor
        for p in tok.parameters():
            p.requires_grad_(False)
        self.params = list(tok.decoder.parameters())
        for p in self.params:
            p.requires_grad_(True)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Decoded log-mel ``[B, M, S // hop]`` of ``audio [B, S]`` with gradients to the decoder:
        :func:`~mmtok.audio.vocoder_eval.decoded_features` with ``grad=True`` (the frozen encoder's
        codes, exactly what inference gives; only their decoding is differentiated)."""
        return decoded_features(self.tok, audio, grad=True)

    def anchor_loss(self, decoded: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        """The tokenizer's reconstruction loss: mean |decoded − true log-mel| over a typical feature std."""
        return (decoded - true[..., : decoded.shape[-1]]).abs().mean() / self.tok.feature_std.mean()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v.detach().cpu() for k, v in self.tok.decoder.state_dict().items()}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], *, where: str) -> None:
        """Restore the decoder a joint run saved; a state saved without one is refused by name."""
        weights = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        if not weights:
            raise CheckpointError(f"{where}: this training state has no tokenizer decoder (it was saved without "
                                  "--train-decoder); resume it without that option or start a new --out")
        try:
            self.tok.decoder.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"{where}: the saved tokenizer decoder does not fit --tokenizer: {e}") from e

    def save(self, folder: str | os.PathLike[str], *, source: str, run: Path, steps: int) -> Path:
        """Write the tuned tokenizer (codes unchanged, decoder tuned) as a checkpoint folder."""
        prov: dict[str, Any] = dict(getattr(self.tok, "provenance", None) or {})
        prov["decoder_tuned"] = {"with_vocoder_run": str(run.resolve()), "steps": steps, "anchor": self.anchor,
                                 "from": source}
        return save_module(self.tok, folder, provenance=prov)
