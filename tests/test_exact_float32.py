"""The tokenizers' public encode/decode compute in float32, never TF32, even when the user turned TF32 on.

On a GPU, cuDNN convolutions default to TF32, and the learned audio decoder magnifies that rounding into other
sound (about 26 dB SNR from the float32 waveform): a GPU decoded other sound than the CPU, and a streamed
decode other sound than the whole one. TF32 only exists on CUDA, so these tests turn torch's two TF32 flags
on and record, at every convolution and matrix product the call makes, what the flags said then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder, VocoderConfig
from mmtok.core.device import exact_float32
from mmtok.vq.quantizer import VectorQuantizer

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"
PRODUCTS = {torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv_transpose1d,
            torch.nn.functional.conv_transpose2d, torch.nn.functional.linear, torch.matmul, torch.mm, torch.addmm,
            torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.einsum, torch.cdist}


def flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


class FlagsSeen(TorchFunctionMode):
    """Records the TF32 flags at each convolution or matrix product called inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, tuple[bool, bool]]] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in PRODUCTS:
            self.seen.append((getattr(func, "__name__", str(func)), flags()))
        return func(*args, **(kwargs or {}))


@pytest.fixture
def tf32_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)


def seen_during(call: Any) -> list[tuple[str, tuple[bool, bool]]]:
    with FlagsSeen() as mode:
        out = call()
        if hasattr(out, "__next__"):  # a generator does its work as it is read
            list(out)
    assert mode.seen, "the call made no convolution or matrix product: nothing was checked"
    assert flags() == (True, True), "the user's TF32 settings were not put back"
    return [(name, f) for name, f in mode.seen if f != (False, False)]


def test_block_turns_tf32_off_and_puts_the_settings_back(tf32_on: None) -> None:
    with exact_float32():
        assert flags() == (False, False)
        with exact_float32():
            assert flags() == (False, False)
        assert flags() == (False, False), "an inner block put TF32 back on inside the outer one"
    assert flags() == (True, True)
    with pytest.raises(KeyError), exact_float32():
        raise KeyError("x")
    assert flags() == (True, True), "an error inside the block left TF32 off"


def test_block_leaves_settings_that_were_already_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    with exact_float32():
        assert flags() == (False, False)
    assert flags() == (False, False)


@pytest.fixture(scope="module")
def audio_tok() -> AudioTokenizer:
    torch.manual_seed(0)
    cfg = AudioTokenizerConfig(encoder_kind="conv", code_dim=16, encoder_channels=32, decoder_channels=32,
                               decoder_blocks=3, block_tokens=100,
                               vq=mmtok.VQConfig(dim=16, codebook_size=64, cosine=True, codebook_dim=8))
    tok = AudioTokenizer(cfg).eval()
    tok.vocoder = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=2)).eval()
    return tok


@pytest.mark.parametrize("path", ["encode", "decode", "decode_griffin_lim", "decode_stream", "vocoder_decode",
                                  "vocoder_decode_windows"])
def test_audio_paths_compute_without_tf32(tf32_on: None, audio_tok: AudioTokenizer, path: str) -> None:
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(1)) * 0.1
    codes = audio_tok.encode(wave, sample_rate=16000)
    mel = audio_tok.decode_features(codes)
    calls = {
        "encode": lambda: audio_tok.encode(wave, sample_rate=16000),
        "decode": lambda: audio_tok.decode(codes),
        "decode_griffin_lim": lambda: audio_tok.decode(codes, vocoder="griffin-lim"),
        "decode_stream": lambda: audio_tok.decode_stream(codes.split(7)),
        "vocoder_decode": lambda: audio_tok.vocoder.decode(mel),
        "vocoder_decode_windows": lambda: audio_tok.vocoder.decode(mel, chunk_frames=40),
    }
    assert seen_during(calls[path]) == []


def test_image_tokenizer_computes_without_tf32(tf32_on: None) -> None:
    tok = mmtok.load("image")
    picture = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".jpg", ".png"))[0]
    codes = tok.encode(picture)
    assert seen_during(lambda: tok.encode(picture)) == []
    assert seen_during(lambda: tok.decode(codes)) == []


def test_quantizer_search_computes_without_tf32(tf32_on: None) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32)).eval()
    x = torch.randn(100, 8)
    assert seen_during(lambda: vq.encode(x)) == []
