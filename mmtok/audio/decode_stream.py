"""Streaming decode: audio codes arriving in chunks (from a model that generates them, or a
network) -> waveform pieces, each handed out as soon as no later code can change it.

The log-mel decoder and the learned vocoder both see a fixed number of neighbours
(:attr:`MelDecoder.context_tokens <mmtok.audio.model.MelDecoder.context_tokens>` tokens, then
:attr:`Vocoder.context_frames <mmtok.audio.vocoder.Vocoder.context_frames>` frames). So the
samples of token ``t`` are final once token ``t + lookahead`` has arrived, and a window of the
codes with that much real context each side decodes them exactly as the whole clip would: the
pieces joined equal ``tok.decode(all codes)`` within float tolerance, whatever the chunk sizes.

Each piece costs a decode of its own tokens plus ``2 * lookahead`` tokens of context, so chunks
of a few tokens cost several times a whole decode; Griffin-Lim works on whole clips and has no
streaming form.

>>> import mmtok, torch
>>> tok = mmtok.load("audio")
>>> codes = torch.randint(0, tok.codebook_size, (120,), generator=torch.Generator().manual_seed(0))
>>> pieces = list(tok.decode_stream(codes.split(40)))
>>> [p.numel() for p in pieces], tok.decode_lookahead
([3520, 12800, 12800, 9280], 29)
>>> bool(torch.allclose(torch.cat(pieces), tok.decode(codes), atol=1e-3))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import torch

from mmtok.audio.codes import check_codes
from mmtok.audio.model import MelDecoder
from mmtok.audio.vocoder import Vocoder
from mmtok.core.errors import AudioError


class AudioTokenizer(Protocol):
    """What the streaming decode uses of :class:`mmtok.audio.tokenizer.AudioTokenizer` (which
    imports this module, so it is named here by its parts)."""

    cfg: Any  # frames_per_token, samples_per_token
    decoder: MelDecoder

    @property
    def device(self) -> torch.device: ...
    @property
    def codebook_size(self) -> int: ...
    def decode_features(self, codes: Any) -> torch.Tensor: ...

__all__ = ["lookahead_tokens", "stream_waveform"]


def lookahead_tokens(tok: AudioTokenizer, voc: Vocoder) -> int:
    """Tokens after token ``t`` that its samples depend on: the log-mel decoder's context, then the
    vocoder's (its receptive field and level correction), rounded up to whole tokens."""
    fpt = tok.cfg.frames_per_token
    return tok.decoder.context_tokens + -(-voc.context_frames // fpt)


def stream_waveform(tok: AudioTokenizer, chunks: Iterable[Any], voc: Vocoder, *,
                    chunk_frames: int | None = None) -> Iterator[torch.Tensor]:
    """Waveform pieces from chunks of codes ``[k]`` (see the module docstring); one piece per chunk,
    empty while the samples it adds are not final yet, and the rest after the last chunk.
    ``chunk_frames`` bounds the vocoder's memory on a long chunk (:meth:`Vocoder.decode`)."""
    reach = lookahead_tokens(tok, voc)
    held = torch.zeros(0, dtype=torch.long, device=tok.device)  # codes from token `start` on
    start = done = total = 0  # first held token; tokens whose samples are out; tokens received
    for i, chunk in enumerate(chunks):
        codes = _chunk_codes(chunk, tok.codebook_size, i).to(tok.device)
        held, total = torch.cat([held, codes]), total + codes.numel()
        ready = max(done, total - reach)
        yield _piece(tok, voc, held, start, done, ready, chunk_frames)
        done = ready
        keep_from = max(0, done - reach)  # the left context the next piece needs
        held, start = held[keep_from - start :], keep_from
    if total == 0:
        raise AudioError("decode_stream got no codes (no chunks, or all were empty)")
    if done < total:
        yield _piece(tok, voc, held, start, done, total, chunk_frames)


def _chunk_codes(chunk: Any, codebook_size: int, index: int) -> torch.Tensor:
    """One chunk as int64 codes ``[k]``; an empty chunk is allowed."""
    if isinstance(chunk, torch.Tensor) and chunk.numel() == 0 and chunk.dim() == 1:
        return torch.zeros(0, dtype=torch.long)
    try:
        codes = check_codes(chunk, codebook_size)
    except (AudioError, TypeError) as e:
        raise type(e)(f"decode_stream chunk {index}: {e}") from e
    if codes.dim() != 1:
        raise AudioError(f"decode_stream chunk {index}: codes must be [k] (one clip), got shape {tuple(codes.shape)}")
    return codes


def _piece(tok: AudioTokenizer, voc: Vocoder, held: torch.Tensor, start: int, a: int, b: int,
           chunk_frames: int | None) -> torch.Tensor:
    """Samples of tokens ``[a, b)`` decoded from the held codes (tokens ``[start, start + len)``), with
    whatever real context of them there is each side."""
    if b <= a:
        return torch.zeros(0, device=tok.device)
    spt = tok.cfg.samples_per_token
    with torch.inference_mode():
        mel = tok.decode_features(held)  # (M, fpt * len(held))
        wave = voc.decode(mel.to(voc.window.device), chunk_frames=chunk_frames).to(tok.device)  # (len(held) * spt,)
        piece = wave[(a - start) * spt : (b - start) * spt]
    return piece.clone()  # an ordinary tensor, made outside inference mode
