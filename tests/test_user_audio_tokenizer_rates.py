"""A user's audio tokenizer that keeps the MediaTokenizer contract (``encode(x)`` alone, no ``sample_rate``
keyword) in an Interleaver: samples at its own rate are encoded without the keyword (before: a DocumentError
from ``encode() got an unexpected keyword argument``); samples at another rate, or for a tokenizer that states
no rate, are refused in words that say what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mmtok import ByteTokenizer, Interleaver
from mmtok.core.errors import DocumentError
from mmtok.core.protocol import takes_keyword


class Tones:
    """Codes: one per 160 samples, the sign pattern of each block's mean (4 codes)."""

    codebook_size = 4
    tokens_per_second = 100.0
    fingerprint = "tones-1"

    def __init__(self, sample_rate: int | None = 16000) -> None:
        if sample_rate is not None:
            self.sample_rate = sample_rate

    def encode(self, x: Any) -> torch.Tensor:
        w = torch.as_tensor(np.asarray(x, dtype=np.float32))
        blocks = w[: w.numel() // 160 * 160].reshape(-1, 160).mean(1)
        return (blocks > 0).long() * 2 + (blocks.abs() > 0.25).long()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.zeros(codes.numel() * 160)


def _wave(seconds: float = 0.05) -> np.ndarray:
    return np.sin(np.linspace(0, 40, int(16000 * seconds))).astype(np.float32)


def test_samples_at_the_tokenizers_own_rate_are_encoded_without_the_keyword() -> None:
    il = Interleaver(None, text=ByteTokenizer(), audio=Tones())
    doc = [{"text": "hi"}, {"audio": _wave(), "sample_rate": 16000}]
    out = il.decode(il.encode(doc))
    assert torch.equal(torch.as_tensor(out[1]["audio_codes"]), Tones().encode(_wave()))


@pytest.mark.parametrize(("tok", "said"), [
    (Tones(), "takes no sample_rate and encodes at 16000 Hz: resample to 16000 Hz first"),
    (Tones(sample_rate=None), "takes no sample_rate and states no rate of its own: give it a sample_rate attribute"),
])
def test_samples_at_another_rate_are_refused_with_what_to_do(tok: Tones, said: str) -> None:
    il = Interleaver(None, text=ByteTokenizer(), audio=tok)
    with pytest.raises(DocumentError) as err:
        il.encode([{"audio": _wave(), "sample_rate": 44100}])
    assert str(err.value).startswith("segment 0 (audio): samples at 44100 Hz, but the audio tokenizer Tones ")
    assert said in str(err.value)


def test_takes_keyword_reads_keywords_and_kwargs() -> None:
    assert not takes_keyword(Tones().encode, "sample_rate")
    assert takes_keyword(lambda x, *, sample_rate=None: x, "sample_rate")
    assert takes_keyword(lambda x, **kw: x, "sample_rate")
    assert not takes_keyword(lambda x, *sample_rate: x, "sample_rate")
