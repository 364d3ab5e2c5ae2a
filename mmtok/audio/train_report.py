"""What an audio tokenizer's training run writes beside its model: codebook usage and relative
log-mel L1 on clips held aside (``summary.json``), the original-vs-reconstructed log-mel and
codebook-usage pictures (skipped without matplotlib), and the short model card in ``OUT/model/README.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.metrics import codebook_usage
from mmtok.core.plotting import pyplot

__all__ = ["model_card", "save_pictures", "validate"]


@torch.no_grad()
def validate(tok: AudioTokenizer, clips: Sequence[Path | torch.Tensor]) -> dict[str, Any]:
    """Codebook usage over ``clips`` (files, or mono waveforms at the tokenizer's rate) and mean
    relative L1 (L1 / clip log-mel range) of the decoder and of the bare codes (the k-means view) on them."""
    k, fpt = tok.codebook_size, tok.cfg.frames_per_token
    seen = torch.zeros(k, dtype=torch.long)
    ours, bare = [], []
    for f in clips:
        audio = f if isinstance(f, torch.Tensor) else load_audio(f, target_rate=tok.sample_rate)
        codes = tok.encode(audio, tok.sample_rate)
        seen += torch.bincount(codes, minlength=k)
        ctx = tok.context_frames
        target = tok.context_features(audio)
        target = target[:, ctx : target.shape[-1] - ctx]  # the frames the tokens stand for (as benchmarks/audio.py)
        span = max(float(target.max() - target.min()), 1e-6)
        ours.append(float((tok.decode_features(codes)[:, : target.shape[-1]] - target).abs().mean()) / span)
        if tok.cfg.encoder_kind == "slice":
            slices = tok.vq.embed[codes].reshape(-1, fpt, tok.cfg.n_mels).permute(2, 0, 1).reshape(tok.cfg.n_mels, -1)
            bare.append(float((slices[:, : target.shape[-1]] - target).abs().mean()) / span)
    out = {"clips": len(clips), "tokens": int(seen.sum()), "usage": round(codebook_usage(seen)[0], 4),
           "rel_l1": round(sum(ours) / len(ours), 5)}
    if bare:
        out["rel_l1_codes_only"] = round(sum(bare) / len(bare), 5)
    return out


# --------------------------------------------------------------------------- pictures


def save_pictures(tok: AudioTokenizer, mel: torch.Tensor, counts: torch.Tensor, out: Path) -> bool:
    """``out/mel.png`` (``mel`` and its reconstruction) and ``out/codebook-usage.png`` (``counts``, sorted);
    False, after one line on stderr, when matplotlib is not installed."""
    plt = pyplot(f"{out / 'mel.png'} and {out / 'codebook-usage.png'}")
    if plt is None:
        return False
    with torch.inference_mode():
        res = tok(mel[None].to(tok.device))
    fig, ax = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    lo, hi = float(res.target.min()), float(res.target.max())
    for a, m, title in zip(ax, (res.target[0], res.reconstruction[0]), ("original", "reconstructed"), strict=True):
        a.imshow(m.cpu().numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi)
        a.set_title(f"{title} log-mel")
    fig.tight_layout()
    fig.savefig(out / "mel.png", dpi=80)
    plt.close(fig)
    fig, a = plt.subplots(figsize=(8, 3))
    c = counts.sort(descending=True).values.numpy()
    a.bar(np.arange(c.size), c, width=1.0)
    a.set_title(f"codebook usage: {codebook_usage(counts)[0]:.1%} of {c.size} codes used")
    a.set_xlabel("code (sorted by count)")
    fig.tight_layout()
    fig.savefig(out / "codebook-usage.png", dpi=80)
    plt.close(fig)
    return True


def model_card(cfg: AudioTokenizerConfig, prov: dict[str, Any]) -> str:
    """A short model card: what it is, how it was trained (exact command), on what."""
    encoder = ("each token's own log-mel slice -> nearest k-means code" if cfg.encoder_kind == "slice" else
               f"a learned convolutional encoder, {cfg.encoder_token_blocks} blocks at token rate -> VQ code")
    waveform = ("a learned vocoder (attached)" if cfg.vocoder is not None else
                f"NNLS mel inversion + torchaudio Griffin-Lim, {cfg.griffin_lim_iters} iterations; a learned "
                "vocoder is trained and attached by `python -m mmtok.audio.vocoder_train`")
    resumed = "".join(f"\n- resumed with: `{line}`" for line in prov.get("resumed_with") or [])
    return f"""# mmtok audio tokenizer

Log-mel ({encoder}) -> log-mel through a context decoder -> waveform ({waveform}).
{cfg.sample_rate} Hz mono, {cfg.n_mels} mels, hop {cfg.hop_length},
{cfg.sample_rate // cfg.samples_per_token} tokens/s, one codebook of {cfg.vq.codebook_size} codes.

## Training

- command: `{prov.get("command")}`{resumed}
- data: {prov.get("data")} ({prov.get("train_files")} files, {prov.get("train_seconds")} s)
- steps: {prov.get("steps")}, time: {prov.get("train_minutes")} min on {prov.get("machine")}, {prov.get("threads")} thread(s)
- last batch: {json.dumps(prov.get("last", {}))}
"""
