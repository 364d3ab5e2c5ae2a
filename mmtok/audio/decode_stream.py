"""Streaming decode: audio codes arriving in chunks (from a model that generates them, or a
network) -> waveform pieces, each handed out as soon as no later code can change it.

The log-mel decoder and the learned vocoder see a fixed number of neighbours, so the samples
of a token are final once :func:`lookahead_samples` more samples' worth of tokens have
arrived. Two engines give them:

- exact streaming (:mod:`mmtok.audio.streaming`): every convolution keeps the frames its
  kernel still needs, so each frame is computed once; small chunks cost more per token only
  through the fixed cost of each call (``benchmarks/audio_quality.py`` times chunks of 1
  and 10 tokens), and a long chunk goes through in pieces of at most ``VOCODER_CHUNK_FRAMES``
  frames (60 s), so memory stays bounded whatever the chunk sizes;
- windows, for a vocoder with a level correction (``mel_match``, which looks at whole
  stretches of output): each piece decodes its tokens with ``lookahead`` tokens of real
  context each side, several times the work for small chunks.

Either way the pieces joined equal ``tok.decode(all codes)`` within float tolerance,
whatever the chunk sizes, and in an autocast region too (autocast is off inside, as in
``decode``). Griffin-Lim works on whole clips and has no streaming form.

>>> import mmtok, torch
>>> tok = mmtok.load("audio")
>>> codes = torch.randint(0, tok.codebook_size, (120,), generator=torch.Generator().manual_seed(0))
>>> pieces = list(tok.decode_stream(codes.split(40)))
>>> [p.numel() for p in pieces], tok.decode_lookahead
([3680, 12800, 12800, 9120], 29)
>>> bool(torch.allclose(torch.cat(pieces), tok.decode(codes), atol=1e-3))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
import torch

from mmtok.audio.codes import check_codes
from mmtok.audio.config import VOCODER_CHUNK_FRAMES
from mmtok.audio.model import MelDecoder
from mmtok.audio.streaming import StreamMelDecoder, StreamVocoder
from mmtok.audio.vocoder import Vocoder
from mmtok.core.device import exact_float32
from mmtok.core.errors import AudioError
from mmtok.vq.quantizer import VectorQuantizer, no_autocast

__all__ = ["lookahead_samples", "lookahead_tokens", "stream_waveform"]


class AudioTokenizer(Protocol):
    """What the streaming decode uses of :class:`mmtok.audio.tokenizer.AudioTokenizer` (which
    imports this module, so it is named here by its parts)."""

    cfg: Any  # frames_per_token, samples_per_token, hop_length
    decoder: MelDecoder
    vq: VectorQuantizer
    feature_std: torch.Tensor  # (M, 1): its dtype is the model's

    @property
    def device(self) -> torch.device: ...
    @property
    def codebook_size(self) -> int: ...
    def decode_features(self, codes: Any) -> torch.Tensor: ...
    def decoder_input(self, zq: torch.Tensor) -> torch.Tensor: ...
    def denormalize(self, out: torch.Tensor) -> torch.Tensor: ...


def streams_exactly(voc: Vocoder) -> bool:
    """Whether ``voc`` runs in the exact streaming engine (it has no level correction)."""
    return not voc.cfg.mel_match


def lookahead_samples(tok: AudioTokenizer, voc: Vocoder) -> int:
    """How far the samples handed out run behind the samples of the tokens received."""
    if streams_exactly(voc):
        return StreamMelDecoder(tok.decoder).lag_frames * tok.cfg.hop_length + StreamVocoder(voc).lag_samples
    fpt = tok.cfg.frames_per_token  # windows: whole tokens of the decoders' context
    return (tok.decoder.context_tokens + -(-voc.context_frames // fpt)) * tok.cfg.samples_per_token


def lookahead_tokens(tok: AudioTokenizer, voc: Vocoder) -> int:
    """Tokens after token ``t`` that must arrive before all of its samples are out."""
    return -(-lookahead_samples(tok, voc) // tok.cfg.samples_per_token)


def stream_waveform(tok: AudioTokenizer, chunks: Iterable[Any], voc: Vocoder, *,
                    chunk_frames: int | None = VOCODER_CHUNK_FRAMES) -> Iterator[torch.Tensor]:
    """Waveform pieces from chunks of codes ``[k]`` (see the module docstring): one piece per chunk
    (empty while the samples it adds are not final yet), and the rest after the last chunk.
    ``chunk_frames`` bounds memory on a long chunk: the exact engine pushes it through the decoders
    ``chunk_frames // frames_per_token`` tokens at a time (the same samples as one push), the windowed
    engine's vocoder runs that many frames at a time; None: no bound. One array or tensor given as
    ``chunks`` is a ``TypeError`` here, before any chunk is read (iterating it would take its codes,
    or its rows, for chunks)."""
    if isinstance(chunks, (torch.Tensor, np.ndarray)):
        raise TypeError(f"decode_stream takes an iterable of code chunks (a list or generator of [k] arrays), not "
                        f"one {type(chunks).__name__} of shape {tuple(chunks.shape)}; split it into chunks "
                        "(decode_stream(codes.split(k))) or decode it whole (decode(codes))")
    if streams_exactly(voc):
        return _exact(tok, chunks, voc, chunk_frames)
    return _windows(tok, chunks, voc, chunk_frames)


def _exact(tok: AudioTokenizer, chunks: Iterable[Any], voc: Vocoder,
           chunk_frames: int | None) -> Iterator[torch.Tensor]:
    decoder, vocoder = StreamMelDecoder(tok.decoder), StreamVocoder(voc)
    step = None if chunk_frames is None else max(1, chunk_frames // tok.cfg.frames_per_token)  # tokens per push

    def push(codes: torch.Tensor, last: bool) -> torch.Tensor:
        # as decode: the CPU's sound on a GPU, and the model's dtype in an autocast region
        with torch.inference_mode(), exact_float32(), no_autocast(tok.device):
            if codes.numel():
                z = tok.decoder_input(tok.vq.decode(codes[None]))  # (1, D, k)
            else:
                z = torch.zeros(1, tok.decoder.conv_in.in_channels, 0, device=tok.device, dtype=tok.feature_std.dtype)
            mel = tok.denormalize(decoder.push(z, last=last))  # (1, M, f)
            wave = vocoder.push(mel.to(voc.window.device), last=last)[0].to(tok.device, torch.float32)
        return wave.clone()  # an ordinary tensor, made outside inference mode

    total = 0
    for i, chunk in enumerate(chunks):
        codes = _chunk_codes(chunk, tok.codebook_size, i).to(tok.device)
        total += codes.numel()
        pieces = codes.split(step) if step is not None and codes.numel() > step else (codes,)
        yield torch.cat([push(piece, last=False) for piece in pieces])
    if total == 0:
        raise AudioError("decode_stream got no codes (no chunks, or all were empty)")
    yield push(torch.zeros(0, dtype=torch.long, device=tok.device), last=True)


def _windows(tok: AudioTokenizer, chunks: Iterable[Any], voc: Vocoder,
             chunk_frames: int | None) -> Iterator[torch.Tensor]:
    reach = lookahead_tokens(tok, voc)
    held = torch.zeros(0, dtype=torch.long, device=tok.device)  # codes from token `start` on
    start = done = total = 0  # first held token; tokens whose samples are out; tokens received
    for i, chunk in enumerate(chunks):
        codes = _chunk_codes(chunk, tok.codebook_size, i).to(tok.device)
        held, total = torch.cat([held, codes]), total + codes.numel()
        ready = max(done, total - reach)
        yield _window(tok, voc, held, start, done, ready, chunk_frames)
        done = ready
        keep_from = max(0, done - reach)  # the left context the next piece needs
        held, start = held[keep_from - start :], keep_from
    if total == 0:
        raise AudioError("decode_stream got no codes (no chunks, or all were empty)")
    yield _window(tok, voc, held, start, done, total, chunk_frames)


def _chunk_codes(chunk: Any, codebook_size: int, index: int) -> torch.Tensor:
    """One chunk as int64 codes ``[k]``; an empty chunk (``[]``, or any array or tensor of shape
    ``(0,)``) gives none, and one code on its own is a ``TypeError``."""
    if isinstance(chunk, (torch.Tensor, np.ndarray)) and tuple(chunk.shape) == (0,):
        return torch.zeros(0, dtype=torch.long)
    if isinstance(chunk, (list, tuple)) and len(chunk) == 0:
        return torch.zeros(0, dtype=torch.long)
    if isinstance(chunk, (int, np.integer)) or (isinstance(chunk, (torch.Tensor, np.ndarray)) and chunk.ndim == 0):
        raise TypeError(f"decode_stream chunk {index} is one code ({chunk!r}), not a chunk [k]; pass chunks of "
                        "codes (decode_stream(codes.split(k))), not the codes one by one")
    try:
        codes = check_codes(chunk, codebook_size)
    except (AudioError, TypeError) as e:
        raise type(e)(f"decode_stream chunk {index}: {e}") from e
    if codes.dim() != 1:
        raise AudioError(f"decode_stream chunk {index}: codes must be [k] (one clip), got shape {tuple(codes.shape)}")
    return codes


def _window(tok: AudioTokenizer, voc: Vocoder, held: torch.Tensor, start: int, a: int, b: int,
            chunk_frames: int | None) -> torch.Tensor:
    """Samples of tokens ``[a, b)`` decoded from the held codes (tokens ``[start, start + len)``), with
    whatever real context of them there is each side."""
    if b <= a:
        return torch.zeros(0, device=tok.device)
    spt = tok.cfg.samples_per_token
    with torch.inference_mode(), exact_float32(), no_autocast(tok.device):  # as decode
        mel = tok.decode_features(held)  # (M, fpt * len(held))
        wave = voc.decode(mel.to(voc.window.device), chunk_frames=chunk_frames).to(tok.device)  # (len(held) * spt,)
        piece = wave[(a - start) * spt : (b - start) * spt]
    return piece.clone()  # an ordinary tensor, made outside inference mode
