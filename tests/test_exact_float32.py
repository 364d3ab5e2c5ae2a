"""The tokenizers' public encode/decode compute in float32, never TF32, even when the user turned TF32 on.

On a GPU, cuDNN convolutions default to TF32, and the learned audio decoder magnifies that rounding into other
sound (about 26 dB SNR from the float32 waveform): a GPU decoded other sound than the CPU, and a streamed
decode other sound than the whole one. TF32 only exists on CUDA, so these tests turn TF32 on as users do (the
older flags, ``set_float32_matmul_precision``, the newer ``fp32_precision`` strings) and record, at every
convolution and matrix product the call makes, what the settings said then.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.core.device import _precision_settings, exact_float32, tf32_matmul_possible
from mmtok.vq.quantizer import VectorQuantizer

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"
PRODUCTS = {torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv_transpose1d,
            torch.nn.functional.conv_transpose2d, torch.nn.functional.linear, torch.matmul, torch.mm, torch.addmm,
            torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.einsum, torch.cdist}


USER_SETUPS = {  # how a user turns TF32 on; each leaves torch's older flags readable or not
    "older_flags": "torch.backends.cudnn.allow_tf32 = True; torch.backends.cuda.matmul.allow_tf32 = True",
    "matmul_precision_high": 'torch.set_float32_matmul_precision("high")',
    "newer_global": 'torch.backends.fp32_precision = "tf32"',
    "newer_matmul": 'torch.backends.cuda.matmul.fp32_precision = "tf32"',
}
EXACT = ("ieee", "ieee") if _precision_settings()[0][1] == "fp32_precision" else (False, False)


def flags() -> tuple[object, ...]:
    """The precision settings as exact_float32 reads and sets them (never torch's older flags alone: they
    raise once the newer strings are in use)."""
    return tuple(getattr(obj, name) for obj, name in _precision_settings())


def everything() -> dict[str, object]:
    """Every precision setting torch has, each read as a user would: its value, or the error it raises."""
    reads = {"cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
             "matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
             "float32_matmul_precision": torch.get_float32_matmul_precision}
    for path in ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision",
                 "cudnn.conv.fp32_precision", "cudnn.rnn.fp32_precision"):
        reads[path] = lambda path=path: eval("torch.backends." + path)
    out: dict[str, object] = {}
    for name, read in reads.items():
        try:
            out[name] = read()
        except (RuntimeError, AttributeError) as e:
            out[name] = type(e).__name__
    return out


class FlagsSeen(TorchFunctionMode):
    """Records the TF32 flags at each convolution or matrix product called inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, tuple[bool, bool]]] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in PRODUCTS:
            self.seen.append((getattr(func, "__name__", str(func)), flags()))
        return func(*args, **(kwargs or {}))


@pytest.fixture(autouse=True)
def settings_kept() -> Any:
    """Every test leaves torch's precision settings as it found them (checked: the next test files run with
    torch's defaults)."""
    pristine = everything()
    saved = [(obj, name, getattr(obj, name)) for obj, name in _precision_settings()]
    yield
    if hasattr(torch.backends, "fp32_precision"):
        torch.backends.fp32_precision = "none"
    torch.set_float32_matmul_precision("highest")
    for obj, name, value in saved:
        setattr(obj, name, value)
    assert everything() == pristine, "the test left torch's precision settings changed"


@pytest.fixture
def tf32_on() -> None:
    exec(USER_SETUPS["older_flags"])


def seen_during(call: Any) -> list[tuple[str, tuple[bool, bool]]]:
    with FlagsSeen() as mode:
        out = call()
        if hasattr(out, "__next__"):  # a generator does its work as it is read
            list(out)
    assert mode.seen, "the call made no convolution or matrix product: nothing was checked"
    return [(name, f) for name, f in mode.seen if f != EXACT]


def test_block_turns_tf32_off_and_puts_the_settings_back(tf32_on: None) -> None:
    on = flags()
    assert on != EXACT and tf32_matmul_possible()
    with exact_float32():
        assert flags() == EXACT and not tf32_matmul_possible()
        with exact_float32():
            assert flags() == EXACT
        assert flags() == EXACT, "an inner block put TF32 back on inside the outer one"
    assert flags() == on
    with pytest.raises(KeyError), exact_float32():
        raise KeyError("x")
    assert flags() == on, "an error inside the block left TF32 off"


@pytest.mark.parametrize("setup", sorted(USER_SETUPS))
def test_every_way_of_turning_tf32_on_is_turned_off_and_read_back_alike(setup: str) -> None:
    """Whichever of torch's settings a user turned TF32 on with, a decode computes without it, TF32 is found
    on by the search's own check, and afterwards every setting reads as before (the same values, and the same
    RuntimeError where torch raised one before: reading its older flags after the newer ones were used)."""
    exec(USER_SETUPS[setup])
    before = everything()
    assert tf32_matmul_possible(), f"{setup} turns TF32 on for CUDA matrix products, and the search must know"
    tok = mmtok.load("image")
    codes = torch.zeros(16, 16, dtype=torch.long)
    assert seen_during(lambda: tok.decode(codes)) == []
    assert everything() == before


def test_blocks_in_two_threads_share_one_change(tf32_on: None) -> None:
    """A block still open when another thread's block ends keeps TF32 off; the last to end puts it back."""
    on = flags()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[object, ...]] = {}

    def first() -> None:
        with exact_float32():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with exact_float32():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = flags()
        seen["after both"] = flags()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after the first ended": EXACT, "after both": on}


def test_block_leaves_settings_that_were_already_exact() -> None:
    for obj, name in _precision_settings():
        setattr(obj, name, EXACT[0])
    with exact_float32():
        assert flags() == EXACT
    assert flags() == EXACT


@pytest.fixture(scope="module")
def audio_tok() -> AudioTokenizer:
    torch.manual_seed(0)
    cfg = AudioTokenizerConfig(encoder_kind="conv", code_dim=16, encoder_channels=32, decoder_channels=32,
                               decoder_blocks=3, block_tokens=100,
                               vq=mmtok.VQConfig(dim=16, codebook_size=64, cosine=True, codebook_dim=8))
    tok = AudioTokenizer(cfg).eval()
    tok.vocoder = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=2)).eval()
    return tok


@pytest.mark.parametrize("path", ["encode", "encode_iter", "decode", "decode_griffin_lim", "decode_stream",
                                  "vocoder_decode", "vocoder_decode_windows"])
def test_audio_paths_compute_without_tf32(tf32_on: None, audio_tok: AudioTokenizer, path: str) -> None:
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(1)) * 0.1
    codes = audio_tok.encode(wave, sample_rate=16000)
    mel = audio_tok.decode_features(codes)
    calls = {
        "encode": lambda: audio_tok.encode(wave, sample_rate=16000),
        "encode_iter": lambda: audio_tok.encode_iter([wave[:7000], wave[7000:]], sample_rate=16000),
        "decode": lambda: audio_tok.decode(codes),
        "decode_griffin_lim": lambda: audio_tok.decode(codes, vocoder="griffin-lim"),
        "decode_stream": lambda: audio_tok.decode_stream(codes.split(7)),
        "vocoder_decode": lambda: audio_tok.vocoder.decode(mel),
        "vocoder_decode_windows": lambda: audio_tok.vocoder.decode(mel, chunk_frames=40),
    }
    on = flags()
    assert seen_during(calls[path]) == []
    assert flags() == on, "the user's TF32 settings were not put back"


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
