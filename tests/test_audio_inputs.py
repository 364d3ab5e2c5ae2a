"""Audio inputs at the API's edges: byte order, sample rates, chunking, channel layout of
streams, odd code arrays, short decodes, and codes that behave as ordinary tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError
from tests.audio_helpers import small_config, small_tokenizer

SMALL = small_config()

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    return small_tokenizer()


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_big_endian_arrays_are_read_as_their_values(tok: AudioTokenizer) -> None:
    pcm = (noise((1600,)) * 2**15).astype(np.int16)
    for dtype in (">i2", ">f4"):
        x = pcm.astype(dtype) if dtype == ">i2" else (pcm / 2**15).astype(dtype)
        assert not x.dtype.isnative
        want = load_audio(x.astype(x.dtype.newbyteorder("=")), SAMPLE_RATE)
        assert torch.equal(load_audio(x, SAMPLE_RATE), want)
    assert torch.equal(tok.encode(np.zeros(16000, ">i2"), SAMPLE_RATE), tok.encode(np.zeros(16000, "<i2"), SAMPLE_RATE))


@pytest.mark.parametrize("rate", [True, False, 16000.9, 0.5, float("nan"), float("inf"), -16000, 0, "16000", None])
def test_sample_rate_must_be_a_positive_whole_number(tok: AudioTokenizer, rate: object) -> None:
    x = noise((100,))
    with pytest.raises(AudioError, match="sample_rate"):
        tok.encode(x, rate)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(x, rate)  # type: ignore[arg-type]


def test_sample_rate_takes_integers_and_integral_floats(tok: AudioTokenizer) -> None:
    x = noise((8000,))
    want = tok.encode(x, 16000)
    for rate in (16000.0, np.int64(16000), np.int32(16000), np.float64(16000.0)):
        assert torch.equal(tok.encode(x, rate), want)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match=r"sample_rate.*True"):
        tok.features(x, True)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), 0, -1.0, float("-inf"), True, "1"])
def test_chunk_seconds_must_be_a_positive_number(tok: AudioTokenizer, bad: object) -> None:
    with pytest.raises(AudioError, match="chunk_seconds"):
        tok.encode(noise((1600,)), SAMPLE_RATE, chunk_seconds=bad)  # type: ignore[arg-type]


def test_infinite_or_huge_chunk_seconds_is_the_clip_in_one_piece(tok: AudioTokenizer) -> None:
    x = noise((8000,))
    whole = tok.encode(x, SAMPLE_RATE)
    for seconds in (float("inf"), 1e300, 0.13):
        assert torch.equal(tok.encode(x, SAMPLE_RATE, chunk_seconds=seconds), whole)


def test_streamed_stereo_keeps_one_channel_layout(tok: AudioTokenizer) -> None:
    x = torch.from_numpy(noise((2, 5440)))
    whole = tok.encode(x, SAMPLE_RATE)
    assert whole.numel() == 17
    assert torch.equal(tok.encode_stream(list(x.split(777, dim=1)), SAMPLE_RATE), whole)  # the tail is [2, 1]
    assert torch.equal(tok.encode_stream(list(x.t().split(777, dim=0))), whole)  # channels last, tail [1, 2]
    # chunks too small to say which axis holds channels wait for one that does
    parts = [x[:, :2], x[:, 2:3], x[:, 3:]]
    assert torch.equal(tok.encode_stream(parts), whole)
    with pytest.raises(AudioError, match=r"chunk 1 .*\(3, 100\)"):
        tok.encode_stream([x[:, :1000], torch.zeros(3, 100)])
    with pytest.raises(AudioError, match="chunk 1"):
        tok.encode_stream([x[:, :1000], torch.zeros(100)])
    mono = torch.from_numpy(noise((5440,)))
    assert torch.equal(tok.encode_stream([mono[:5000], mono[5000:5001], mono[5001:]]), tok.encode(mono, SAMPLE_RATE))


def test_a_stream_of_chunks_too_short_to_tell_its_layout_asks_for_channels_first(tok: AudioTokenizer) -> None:
    x = torch.from_numpy(noise((3200, 2)))  # [S, C]: two channels, 3200 samples
    whole = tok.encode(x, SAMPLE_RATE)
    last, first = list(x.split(2)), list(x.t().split(1, dim=1))  # [2, 2] chunks of [S, C]; [2, 1] of [C, S]
    for chunks in (last, first):  # either reading fits every chunk: refused, not guessed
        with pytest.raises(AudioError, match=r"encode_stream: .*\(2, [12]\).* pass channels_first=True"):
            tok.encode_stream(chunks)
        with pytest.raises(AudioError, match=r"encode_iter: .*channels_first"):
            list(tok.encode_iter(chunks))
    assert torch.equal(tok.encode_stream(last, channels_first=False), whole)
    assert torch.equal(tok.encode_stream(first, channels_first=True), whole)
    assert torch.equal(torch.cat(list(tok.encode_iter(first, channels_first=True))), whole)
    # short chunks of different lengths fit one layout only: [S, C] with C = 2
    assert torch.equal(tok.encode_stream([x[:3], x[3:5], x[5:16]]), tok.encode(x[:16], SAMPLE_RATE))
    with pytest.raises(AudioError, match=r"chunk 1 .*\(3, 5\).* fits no layout"):
        tok.encode_stream([x[:3].t(), torch.zeros(3, 5)])  # [2, 3] then [3, 5]
    with pytest.raises(AudioError, match=r"chunk 0.*\(2, 3200\).*3200 channels"):
        tok.encode_stream([x.t()], channels_first=False)  # the keyword is the layout: not overruled
    with pytest.raises(TypeError, match="channels_first"):
        tok.encode_stream(last, channels_first=1)  # type: ignore[arg-type]
    # too many short chunks to hold while waiting for one that settles the layout
    with pytest.raises(AudioError, match=r"channels_first"):
        tok.encode_stream(torch.zeros(2, 2) for _ in range(1 << 17))
    # mono chunks [n] never wait, whatever their length; nor do chunks of one sample of one channel
    mono = x[:, 0]
    assert torch.equal(tok.encode_stream(list(mono.split(1))), tok.encode(mono, SAMPLE_RATE))
    assert torch.equal(tok.encode_stream(list(mono.split(3)), channels_first=True), tok.encode(mono, SAMPLE_RATE))
    assert torch.equal(tok.encode_stream(list(mono[:, None, None].unbind())), tok.encode(mono, SAMPLE_RATE))
    doc = " ".join((AudioTokenizer.encode_stream.__doc__ or "").split())
    assert "channels_first" in doc


def test_unusable_arrays_are_audio_errors_that_say_why(tok: AudioTokenizer, tmp_path: Path) -> None:
    cases = [
        (np.full(1600, 1e300), "beyond float32"),  # finite float64 that float32 cannot hold: not "NaN/inf"
        (noise((1600,)) * np.float32(1e30), r"far outside \[-1, 1\]"),  # finite, but no audio (MAX_FLOAT_PEAK)
        (noise((1, 2, 1600)), r"\[S\], \[C, S\] or \[S, C\]"),
        (noise((17, 1600)), "no channel axis"),
    ]
    for x, message in cases:
        with pytest.raises(AudioError, match=message):
            tok.encode(x, SAMPLE_RATE)
    sf.write(tmp_path / "a.wav", noise((2205,)), 22050)
    with pytest.raises(AudioError, match="recorded at 22050 Hz"):
        tok.encode(tmp_path / "a.wav", SAMPLE_RATE)
    with pytest.raises(AudioError, match="empty list"):
        tok.encode([], SAMPLE_RATE)
    loud = noise((1600,))
    loud *= np.float32(60) / np.abs(loud).max()  # loud, under MAX_FLOAT_PEAK: not an error
    assert tok.encode(loud, SAMPLE_RATE).shape == (5,)


def test_a_2d_array_is_one_clip_with_channels_and_a_batch_is_a_list(tok: AudioTokenizer) -> None:
    a, b = torch.from_numpy(noise((8000,), seed=1)), torch.from_numpy(noise((8000,), seed=2))
    assert torch.equal(tok.encode(torch.stack([a, b]), SAMPLE_RATE), tok.encode((a + b) / 2, SAMPLE_RATE))
    codes, lengths = tok.encode([a, b], SAMPLE_RATE)
    assert codes.shape == (2, 25) and lengths.tolist() == [25, 25] and torch.equal(codes[1], tok.encode(b, SAMPLE_RATE))
    doc = " ".join((AudioTokenizer.encode.__doc__ or "").split())  # says so where users look
    assert "[C, S]" in doc and "not a batch" in doc and "list" in doc


@pytest.mark.parametrize("n", [1, 2, 3])
def test_griffin_lim_decodes_a_few_codes(tok: AudioTokenizer, n: int) -> None:
    codes = tok.encode(noise((16000,)), SAMPLE_RATE)[:n]
    wave = tok.decode(codes, vocoder="griffin-lim")
    assert wave.shape == (n * 320,) and bool(torch.isfinite(wave).all())
    mel = tok.decode_features(codes)
    assert tok.mel_to_wave(mel).shape == ((mel.shape[-1] - 1) * 160,)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int16, np.int32])
def test_decode_takes_codes_of_any_integer_dtype(tok: AudioTokenizer, dtype: type) -> None:
    codes = np.array([1, 2, 63], dtype)
    want = tok.decode_features(torch.tensor([1, 2, 63]))
    assert torch.equal(tok.decode_features(codes), want)
    assert torch.equal(tok.decode_features(torch.from_numpy(codes)), want)
    assert tok.decode(codes, vocoder="griffin-lim").shape == (960,)


def test_codes_out_of_range_empty_or_ragged_get_clear_errors(tok: AudioTokenizer) -> None:
    with pytest.raises(AudioError, match=r"0\.\.63.*18446744073709551615"):
        tok.decode(np.array([1, 2**64 - 1], np.uint64))  # past int64: no wrap to a negative number
    with pytest.raises(AudioError, match=r"0\.\.63.*65535"):
        tok.decode_features(torch.tensor([0, 65535], dtype=torch.uint16))
    with pytest.raises(AudioError, match=r"0\.\.63.*-1"):
        tok.decode(np.array([-1, 5], np.int8))
    for empty in ([], np.zeros(0, np.uint16), torch.zeros(0, 5, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long)):
        with pytest.raises(AudioError, match="empty"):
            tok.decode_features(empty)
    with pytest.raises(AudioError, match="empty"):
        tok.decode([])
    with pytest.raises(AudioError, match="ragged"):
        tok.decode_features([[1, 2], [3]])
    with pytest.raises(TypeError, match="integers"):
        tok.decode(np.array([1.0, 2.0]))


def test_an_ogg_cut_short_is_not_called_empty(tmp_path: Path) -> None:
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    sf.write(tmp_path / "full.ogg", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SAMPLE_RATE,
             format="OGG", subtype="VORBIS")
    data = (tmp_path / "full.ogg").read_bytes()
    last_page = data.rfind(b"OggS")
    (tmp_path / "tr.ogg").write_bytes(data[: (last_page + len(data)) // 2])  # its last page cut in half
    with pytest.raises(AudioError, match=r"tr\.ogg could not be decoded.*truncated or corrupt"):
        load_audio(tmp_path / "tr.ogg")
    sf.write(tmp_path / "none.ogg", np.zeros(0, np.float32), SAMPLE_RATE, format="OGG", subtype="VORBIS")
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    for name in ("none.ogg", "none.wav"):  # valid files that hold no samples
        with pytest.raises(AudioError, match=rf"{name.replace('.', '[.]')} is empty \(zero samples\)"):
            load_audio(tmp_path / name)
    assert load_audio(tmp_path / "full.ogg").shape == (3 * SAMPLE_RATE,)


def test_codes_and_decodes_are_ordinary_tensors(tok: AudioTokenizer) -> None:
    x = noise((8000,))
    codes = tok.encode(x, SAMPLE_RATE)
    embedding = torch.nn.Embedding(tok.codebook_size, 4)
    embedding(codes).sum().backward()  # codes can feed a model that trains
    assert embedding.weight.grad is not None and embedding.weight.grad.abs().sum() > 0
    codes[0] = 5  # and can be changed in place
    codes += 1
    batch, lengths = tok.encode([x, x[:3200]], SAMPLE_RATE)
    batch[1, 10:] = 0
    lengths -= 1
    streamed = tok.encode_stream([x[:4000], x[4000:]])
    streamed[0] = 1
    outputs = [tok.features(x, SAMPLE_RATE), tok.decode_features(codes), tok.decode(codes, vocoder="griffin-lim"),
               tok.mel_to_wave(tok.decode_features(codes))]
    for out in outputs:
        assert not out.is_inference()
        out.mul_(0.5)
        assert out.clone().requires_grad_().sum().requires_grad


def test_encode_iter_hands_out_each_block_before_the_recording_ends(tok: AudioTokenizer) -> None:
    x = noise((int(2.7 * 100 * SMALL.samples_per_token),), seed=4)  # 2.7 blocks of 100 tokens
    chunks = [x[i : i + 999] for i in range(0, x.size, 999)]
    seen = []

    def feed():  # a generator that records how far the encoder has read
        for i, chunk in enumerate(chunks):
            seen.append(i)
            yield chunk

    blocks = []
    for block in tok.encode_iter(feed()):
        blocks.append((block, len(seen)))
        assert not block.is_inference()
    assert [b.numel() for b, _ in blocks] == [100, 100, 70]
    assert blocks[0][1] < len(chunks) and blocks[1][1] < len(chunks)  # out before the last chunk was read
    assert torch.equal(torch.cat([b for b, _ in blocks]), tok.encode_stream(chunks))
    with pytest.raises(ValueError, match="encode_iter needs chunks at 16000 Hz"):
        tok.encode_iter(chunks, 8000)  # refused when called, before any chunk is read


def test_the_last_block_reads_only_what_its_tokens_need(tok: AudioTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    # a clip of 2.3 blocks: two whole blocks, then a last one of 30 tokens whose encoder input is
    # 30 tokens' frames with context, not a whole block's (a 1 s clip used to cost 5 s of encoder)
    c, ctx = SMALL, tok.context_frames
    x = torch.from_numpy(noise((int(2.3 * 100 * c.samples_per_token),), seed=5))
    widths: list[int] = []
    latents = tok.latents

    def spy(features: torch.Tensor) -> torch.Tensor:
        widths.append(features.shape[-1])
        return latents(features)

    monkeypatch.setattr(tok, "latents", spy)
    codes = tok.encode(x, SAMPLE_RATE)
    assert codes.numel() == 230
    assert widths == [c.frames_per_token * n + 2 * ctx for n in (100, 100, 30)]
    # the same codes as reading the last block whole: the clip followed by silence to 3 blocks
    widths.clear()
    padded = torch.nn.functional.pad(x, (0, 300 * c.samples_per_token - x.numel()))
    assert torch.equal(tok.encode(padded, SAMPLE_RATE)[:230], codes)
    assert widths[-1] == c.frames_per_token * 100 + 2 * ctx
    assert torch.equal(tok.encode(x, SAMPLE_RATE, chunk_seconds=0.37), codes)  # chunking still changes nothing


def test_too_little_training_audio_for_the_codebook_says_so(tok: AudioTokenizer) -> None:
    from mmtok.audio.codebook import fit_codebook

    ctx = tok.context_frames
    feats = [torch.randn(80, 2 * 3 + 2 * ctx)]  # a clip of 3 tokens, for 64 codes
    with pytest.raises(AudioError, match="gives 3 token vectors, fewer than the 64 codes"):
        fit_codebook(tok, feats, vectors=1000, iters=2, generator=torch.Generator().manual_seed(0))
