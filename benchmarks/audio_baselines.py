"""What both audio benchmarks use: the log-mel slices tokens stand for, the dMel baseline and its
bit budget, the k-means baseline's refusal of too few slices, EnCodec (random weights: for its speed),
the encode and decode timings against it and the codebook-usage fields.

``benchmarks/audio.py`` (synthetic speech, speed and memory) and
``benchmarks/audio_quality.py`` (the real corpus) both import from here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from common import Timing, time_sides
from einops import rearrange

from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.metrics import perplexity, usage_over

ENCODEC_RATE = 24_000  # EnCodec 24 kHz model's rate: the speed clip is given at this rate
DMEL_WHAT = "dMel-style: mel bands binned uniformly at the same bits per token (ceil(log2 K))"  # its rows say so


def slices(tok: AudioTokenizer, audio: torch.Tensor) -> torch.Tensor:
    """Log-mel of the frames the tokens stand for, one row per token: ``[n, fpt*M]``."""
    ctx = tok.context_frames
    with torch.inference_mode():
        mel = tok.context_features(audio)
    mel = mel[:, ctx : mel.shape[-1] - ctx]  # (M, fpt*n)
    return rearrange(mel, "m (n f) -> n (f m)", f=tok.cfg.frames_per_token)


def unslice(rows: torch.Tensor, fpt: int) -> torch.Tensor:
    """Rows of :func:`slices` back to a log-mel ``[M, n*fpt]``."""
    return rearrange(rows, "n (f m) -> m (n f)", f=fpt)


def rel_l1(recon: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error over the target's range."""
    span = float(target.max() - target.min())
    return float((recon - target).abs().mean()) / max(span, 1e-6)


def usage_fields(counts: torch.Tensor) -> dict[str, Any]:
    """Codebook usage as the README and ``benchmarks/image.py`` count it: distinct codes over
    ``min(K, tokens)`` (a run of fewer tokens than codes cannot use more of them than it has tokens),
    with ``distinct``, ``codebook_size`` (K), ``tokens`` and ``perplexity`` beside it. With many more
    tokens than codes this is the share of the K codes used.

    >>> usage_fields(torch.tensor([1, 1, 0, 0, 0, 0, 0, 0]))
    {'usage': 1.0, 'distinct': 2, 'codebook_size': 8, 'tokens': 2, 'perplexity': 2.0}
    """
    c = counts.flatten()
    usage, distinct, tokens = usage_over(c)
    return {"usage": round(usage, 4), "distinct": distinct, "codebook_size": c.numel(), "tokens": tokens,
            "perplexity": round(perplexity(c), 1) if tokens else 0.0}


class UniformBands:
    """dMel-style: mel channels averaged into ``len(bits_per_band)`` bands, band ``i`` binned uniformly
    into ``2**bits_per_band[i]`` levels between its lowest and highest value on ``train`` (bands run from
    the lowest mel channels up).

    >>> train = torch.tensor([[0.0] * 8, [1.0] * 8])  # two slices of 8 mel channels, one frame each
    >>> q = UniformBands(train, 8, 1, [2, 1])  # channels 0-3: 4 levels, channels 4-7: 2 levels
    >>> q(torch.tensor([[0.3] * 8])).tolist()
    [[0.375, 0.375, 0.375, 0.375, 0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self, train: torch.Tensor, n_mels: int, fpt: int, bits_per_band: Sequence[int]) -> None:
        assert bits_per_band and min(bits_per_band) >= 1 and len(bits_per_band) <= n_mels, bits_per_band
        self.n_mels, self.fpt, self.bits_per_band = n_mels, fpt, list(bits_per_band)
        self.levels = 2 ** torch.tensor(self.bits_per_band)  # (bands,)
        self.edges = torch.linspace(0, n_mels, len(self.bits_per_band) + 1).round().long()
        v = self._bands(train)  # (N, bands)
        self.lo, self.hi = v.min(0).values, v.max(0).values

    @property
    def bits_per_token(self) -> int:
        return sum(self.bits_per_band)

    def _bands(self, rows: torch.Tensor) -> torch.Tensor:
        m = rearrange(rows, "n (f m) -> n f m", f=self.fpt).mean(1)  # (N, M) averaged over the slice
        return torch.stack([m[:, a:b].mean(1) for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)], 1)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        v = self._bands(rows)
        width = (self.hi - self.lo).clamp_min(1e-6) / self.levels  # (bands,)
        q = torch.minimum(((v - self.lo) / width).floor().clamp_min(0), self.levels - 1)
        centers = self.lo + (q + 0.5) * width  # (N, bands)
        per_channel = torch.repeat_interleave(centers, torch.diff(self.edges), dim=1)  # (N, M)
        return per_channel.repeat(1, self.fpt)  # (N, fpt*M)


def dmel_bits(k: int) -> int:
    """Bits per token of the dMel baseline beside a codebook of ``k`` codes: ``ceil(log2 k)``, never fewer
    than a code carries.

    >>> dmel_bits(4096), dmel_bits(4097), dmel_bits(5888)
    (12, 13, 13)
    """
    return max(1, (k - 1).bit_length())


def even_splits(bits: int, bands: int) -> list[list[int]]:
    """``bits`` spread over ``bands`` bands as evenly as can be (each ``floor`` or ``ceil`` of
    ``bits / bands``): the extra bits on the lowest bands, or on the highest.

    >>> even_splits(13, 4), even_splits(12, 4)
    ([[4, 3, 3, 3], [3, 3, 3, 4]], [[3, 3, 3, 3]])
    """
    base, extra = divmod(bits, bands)
    low = [base + 1] * extra + [base] * (bands - extra)
    return [low] if extra == 0 else [low, low[::-1]]


def fit_dmel(fit: torch.Tensor, n_mels: int, fpt: int, bits: int) -> UniformBands:
    """dMel at ``bits`` per token: of every band count 1..``bits`` with the bits spread evenly
    (:func:`even_splits`), the quantizer with the lowest L1 on ``fit`` (training slices ``[N, fpt*M]``)."""
    best: tuple[float, UniformBands] | None = None
    for bands in range(1, min(bits, n_mels) + 1):
        for split in even_splits(bits, bands):
            q = UniformBands(fit, n_mels, fpt, split)
            err = float((q(fit) - fit).abs().mean())
            if best is None or err < best[0]:
                best = (err, q)
    assert best is not None
    return best[1]


def kmeans_fit_check(k: int, rows: int, source: str) -> None:
    """Refuse a k-means at ``k`` codes fitted on fewer than ``k`` training slices (``rows``, from ``source``:
    the option or data that gave them), in one line."""
    if rows < k:
        raise SystemExit(f"k-means at K = {k} needs at least {k} training slices; {source} gives {rows}")


@functools.cache
def encodec_24khz() -> Any:
    """EnCodec 24 kHz, random weights (``pretrained=False``: its speed, not its sound), 1.5 kbps, eval.

    Built once per process and shared: it keeps no state between calls, so every speed run times the same model.
    """
    from encodec import EncodecModel

    m = EncodecModel.encodec_model_24khz(pretrained=False)
    m.set_target_bandwidth(1.5)
    return m.eval()


def encode_timings(tok: AudioTokenizer, clip24: torch.Tensor, repeats: int, *,
                   encodec: bool = True) -> dict[str, Timing]:
    """Seconds to encode ``clip24`` (samples at 24 kHz) with ours (``"mmtok"``, resampling included) and,
    with ``encodec``, EnCodec (``"encodec"``), timed in turn (:func:`common.time_sides`), so a host that
    slows down during the run slows both alike."""
    sides: dict[str, Any] = {"mmtok": lambda: tok.encode(clip24, ENCODEC_RATE)}
    if encodec:
        enc = encodec_24khz()

        def encodec_encode() -> None:
            with torch.inference_mode():
                enc.encode(clip24[None, None])

        sides["encodec"] = encodec_encode
    return time_sides(sides, repeats=repeats)


def decode_timings(tok: AudioTokenizer, vocoder: Any, codes: torch.Tensor, clip24: torch.Tensor, repeats: int, *,
                   encodec: bool = True) -> dict[str, Timing]:
    """Seconds to decode ``codes`` to a waveform with ours (``"mmtok"``, ``vocoder`` as ``decode`` takes it)
    and, with ``encodec``, to decode EnCodec's own codes of ``clip24`` (the same sound at 24 kHz) with
    EnCodec's decoder (``"encodec"``), timed in turn (:func:`common.time_sides`)."""
    sides: dict[str, Any] = {"mmtok": lambda: tok.decode(codes, vocoder=vocoder)}
    if encodec:
        enc = encodec_24khz()
        with torch.inference_mode():
            frames = enc.encode(clip24[None, None])

        def encodec_decode() -> None:
            with torch.inference_mode():
                enc.decode(frames)

        sides["encodec"] = encodec_decode
    return time_sides(sides, repeats=repeats)


def encode_speed(tok: AudioTokenizer, clip24: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds (ours, EnCodec) of :func:`encode_timings`."""
    t = encode_timings(tok, clip24, repeats)
    return t["mmtok"].median, t["encodec"].median


def decode_speed(tok: AudioTokenizer, vocoder: Any, codes: torch.Tensor, clip24: torch.Tensor,
                 repeats: int) -> tuple[float, float]:
    """Median seconds (ours, EnCodec) of :func:`decode_timings`."""
    t = decode_timings(tok, vocoder, codes, clip24, repeats)
    return t["mmtok"].median, t["encodec"].median
