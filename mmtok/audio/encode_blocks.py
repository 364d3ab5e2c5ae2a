"""Encoding in fixed blocks: samples arriving in chunks of any size -> codes, block by block.

The signal is processed in fixed blocks of ``block_tokens`` tokens, each read with the same
zero-padded context, so streamed, chunked, batched and whole encodings of
:class:`~mmtok.audio.tokenizer.AudioTokenizer` run identical arithmetic and give identical codes;
a block's codes are final as soon as its samples and the encoder's context have arrived.
A batch (a list of clips) is encoded clip by clip (:func:`encode_clips`), so memory stays that of one clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from mmtok.audio.codes import PAD_CODE
from mmtok.core.device import exact_float32
from mmtok.core.errors import AudioError, MmtokError
from mmtok.vq.quantizer import VectorQuantizer

__all__ = ["encode_clips", "ordinary_blocks", "stream_codes"]


class AudioTokenizer(Protocol):
    """What the block encoder uses of :class:`mmtok.audio.tokenizer.AudioTokenizer` (which
    imports this module, so it is named here by its parts)."""

    cfg: Any  # block_tokens, frames_per_token, samples_per_token, hop_length, n_fft
    context_frames: int  # frames of context each side of a token
    vq: VectorQuantizer

    @property
    def device(self) -> torch.device: ...
    def log_mel(self, audio: torch.Tensor, *, center: bool = True) -> torch.Tensor: ...
    def latents(self, features: torch.Tensor) -> torch.Tensor: ...


def _block_codes(tok: AudioTokenizer, window: torch.Tensor, keep: int) -> torch.Tensor:
    """Samples of one block with context ``[L]`` -> codes of its first ``keep`` tokens."""
    mel = tok.log_mel(window[None], center=False)  # (1, M, fpt*T + 2*ctx)
    if not bool(torch.isfinite(mel.sum())):  # finite samples whose power overflows float32
        raise AudioError(f"audio samples reach {float(window.abs().max()):.3g}: their log-mel overflows "
                         "float32 (audio is about [-1, 1]; integer PCM is scaled when given as an integer array)")
    return tok.vq.encode(tok.latents(mel)[0, :keep])  # (keep,); only real tokens are counted


def stream_codes(tok: AudioTokenizer, chunks: Iterable[torch.Tensor],
                 caller: str = "encode_stream") -> Iterator[torch.Tensor]:
    """Codes block by block from chunks of samples; the same arithmetic whatever the chunking.
    ``caller`` names the public method in messages."""
    c, ctx, device = tok.cfg, tok.context_frames, tok.device
    step = c.block_tokens * c.samples_per_token  # samples between block starts
    window = (c.frames_per_token * c.block_tokens + 2 * ctx - 1) * c.hop_length + c.n_fft
    pending = [torch.zeros(ctx * c.hop_length + c.n_fft // 2, device=device)]  # left zero context
    held, total, emitted = pending[0].numel(), 0, 0  # held: samples in pending
    for chunk in chunks:
        # a copy: the caller may refill its array for the next chunk while this one waits in pending
        pending.append(chunk.to(device, torch.float32, copy=True))
        held, total = held + chunk.numel(), total + chunk.numel()
        if held < window:
            continue
        buf = torch.cat(pending)  # joined once a block is due, not once per chunk
        while buf.numel() >= window:
            yield _block_codes(tok, buf[:window], c.block_tokens)
            buf, emitted = buf[step:], emitted + c.block_tokens
        pending, held = [buf], buf.numel()
    if total == 0:
        raise AudioError(f"{caller} got no samples (all chunks were empty)")
    buf, n = torch.cat(pending), math.ceil(total / c.samples_per_token)
    while emitted < n:
        # the last block reads only what its tokens need: a 1 s clip costs 1 s of encoder, not a block's 5 s
        keep = min(c.block_tokens, n - emitted)
        need = (c.frames_per_token * keep + 2 * ctx - 1) * c.hop_length + c.n_fft
        buf = F.pad(buf, (0, max(0, need - buf.numel())))
        yield _block_codes(tok, buf[:need], keep)
        buf, emitted = buf[step:], emitted + c.block_tokens


def ordinary_blocks(blocks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The codes of ``blocks`` (from :func:`stream_codes`), each block computed under inference mode and
    handed out as an ordinary tensor as soon as it is final."""
    while True:
        with torch.inference_mode(), exact_float32():  # as encode and encode_stream run: the same codes
            block = next(blocks, None)
        if block is None:
            return
        yield block.clone()  # an ordinary tensor, made outside inference mode


def encode_clips(encode_one: Callable[[Any], torch.Tensor], clips: Sequence[Any],
                 sample_rate: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of clips (a list or tuple of paths, arrays or tensors), each encoded by ``encode_one`` ->
    ``(codes [B, n_max], lengths [B])``, shorter clips padded with :data:`~mmtok.audio.codes.PAD_CODE`; an
    error in one clip names it (``clip 1 of the batch: ...``), as the same class. ``sample_rate`` (the one
    the caller gave for every clip) is only checked not to be one rate per clip."""
    if isinstance(sample_rate, (list, tuple, np.ndarray, torch.Tensor)) and np.ndim(sample_rate) == 1:
        raise TypeError(f"encode got sample_rate={np.asarray(sample_rate).tolist()}, one per clip, but a batch takes one "
                        "rate for all its clips: load each clip at the tokenizer's rate first "
                        "(load_audio(clip, rate) resamples it) and pass that rate, or encode the clips one by one")
    if any(isinstance(clip, (int, float, np.number)) for clip in clips):
        raise TypeError("encode got a list of numbers, but a list is a batch of clips; pass one clip's "
                        "samples as a numpy array or tensor (encode(np.asarray(samples), sample_rate))")
    for i, clip in enumerate(clips):
        if isinstance(clip, (list, tuple)):  # would encode as a batch of its own, not as one clip
            raise TypeError(f"clip {i} of the batch is a {type(clip).__name__}: a batch is a flat list of "
                            "clips (paths, arrays or tensors), one level deep")
    rows = []
    for i, clip in enumerate(clips):
        try:
            rows.append(encode_one(clip))
        except (MmtokError, TypeError) as e:  # a missing file, a bad array...: the same class, the clip named
            raise type(e)(f"clip {i} of the batch: {e}") from e
    if not rows:
        raise AudioError("encode got an empty list of clips")
    lengths = torch.tensor([r.numel() for r in rows])
    out = torch.full((len(rows), int(lengths.max())), PAD_CODE, dtype=torch.long, device=rows[0].device)
    for i, r in enumerate(rows):
        out[i, : r.numel()] = r
    return out, lengths
