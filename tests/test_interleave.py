"""The interleaver: exact inverse (property test), every malformed stream, repair, pretty, media."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import mmtok
from mmtok.core.errors import StreamError
from mmtok.stream.interleave import Interleaver, Stream, pretty
from mmtok.stream.positions import positions_thw
from mmtok.stream.text import ByteTokenizer, train_bpe
from mmtok.stream.vocab import Modality, Vocabulary

PATCH = 16
PALETTE = torch.tensor([[r, g, b] for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)])  # (8, 3)


class PaletteImages:
    """A deterministic image tokenizer: each 16×16 patch's mean colour, rounded to 8 colours."""

    codebook_size = 8
    downsample = PATCH
    fingerprint = "palette-v1"

    def encode(self, img: Any) -> torch.Tensor:
        if not isinstance(img, Image.Image):
            img = Image.open(img)
        a = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255)  # (H, W, 3)
        h, w = a.shape[0] // PATCH, a.shape[1] // PATCH
        if h == 0 or w == 0:
            raise ValueError(f"image {tuple(a.shape[:2])} is smaller than one {PATCH}×{PATCH} patch")
        mean = a[: h * PATCH, : w * PATCH].reshape(h, PATCH, w, PATCH, 3).mean(dim=(1, 3))  # (h, w, 3)
        bits = (mean > 0.5).long()
        return bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        rgb = PALETTE[codes]  # (h, w, 3)
        return rgb.repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1).permute(2, 0, 1)


class LoudnessAudio:
    """A deterministic audio tokenizer: the RMS of each 25 ms frame on 16 levels."""

    codebook_size = 16
    sample_rate = 16000
    tokens_per_second = 40
    fingerprint = "loudness-v1"

    def encode(self, x: Any, sample_rate: int | None = None) -> torch.Tensor:
        if isinstance(x, (str, Path)):
            x, sample_rate = sf.read(str(x), dtype="float32")
        if sample_rate != self.sample_rate:
            raise ValueError(f"needs {self.sample_rate} Hz audio, got {sample_rate}")
        hop = self.sample_rate // self.tokens_per_second
        x = torch.as_tensor(x).reshape(-1)
        n = x.numel() // hop
        rms = x[: n * hop].reshape(n, hop).pow(2).mean(1).sqrt()
        return (rms * 16).long().clamp(0, 15)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        hop = self.sample_rate // self.tokens_per_second
        t = torch.arange(codes.numel() * hop) / self.sample_rate
        return (codes.float().repeat_interleave(hop) + 0.5) / 16 * 2**0.5 * torch.sin(2 * torch.pi * 440 * t)


class PaletteVideo:
    """A deterministic video tokenizer: every frame through :class:`PaletteImages`."""

    codebook_size = 8
    fps = 4
    fingerprint = "palette-video-v1"

    def encode(self, frames: torch.Tensor | str | Path) -> torch.Tensor:  # (T, 3, H, W) in [0, 1], or a .npy of it
        if isinstance(frames, (str, Path)):
            frames = torch.from_numpy(np.load(frames))
        images = PaletteImages()
        return torch.stack([images.encode(Image.fromarray((f.permute(1, 2, 0).numpy() * 255).astype(np.uint8)))
                            for f in frames])  # (t, h, w)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.stack([PaletteImages().decode(c) for c in codes])  # (T, 3, H, W)


IL = Interleaver(None, image=PaletteImages(), audio=LoudnessAudio(), video=PaletteVideo())
V = IL.vocab

any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)
image_codes = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31)).map(
    lambda t: {"image_codes": torch.from_numpy(np.random.default_rng(t[2]).integers(0, 8, (t[0], t[1])))}
)
audio_codes = st.lists(st.integers(0, 15), min_size=1, max_size=12).map(lambda c: {"audio_codes": torch.tensor(c)})
video_codes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31)).map(
    lambda t: {"video_codes": torch.from_numpy(np.random.default_rng(t[3]).integers(0, 8, t[:3]))}
)
segment = st.one_of(any_text, any_text.map(lambda t: {"text": t}), image_codes, audio_codes, video_codes)
documents = st.lists(segment, max_size=8)


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.keys() != y.keys():
            return False
        for k in x:
            if isinstance(x[k], torch.Tensor):
                if x[k].shape != y[k].shape or not torch.equal(x[k], y[k]):
                    return False
            elif x[k] != y[k]:
                return False
    return True


def check_stream(s: Stream) -> None:
    n = len(s)
    assert s.ids.dtype == torch.int64 and s.modality.dtype == torch.uint8
    assert s.pos.tolist() == list(range(n)) and s.pos_thw.shape == (n, 3) and s.loss_weight.shape == (n,)
    assert (s.pos_thw[1:, 0] >= s.pos_thw[:-1, 0]).all()  # time never goes back
    text = s.modality == Modality.TEXT
    assert (s.pos_thw[text, 0] == s.pos_thw[text, 1]).all() and (s.pos_thw[text, 1] == s.pos_thw[text, 2]).all()


# --------------------------------------------------------------------------- exact inverse


@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_interleave_then_deinterleave_is_identity(doc: list[Any]) -> None:
    s = IL.encode(doc)
    check_stream(s)
    assert torch.equal(positions_thw(V, s.ids), s.pos_thw)  # positions follow from the ids alone
    back = IL.decode(s)
    assert same(back, IL.normalize(doc))
    assert back.repairs == []
    assert torch.equal(IL.encode(back).ids, s.ids)


def test_bpe_text_round_trips_through_stream() -> None:
    bpe = train_bpe(["an image of a cat", "the sound of rain"] * 30, vocab_size=300)
    il = Interleaver(None, text=bpe, image=PaletteImages())
    doc = ["an image of a cat: ", {"image_codes": [[1, 2, 3]]}, " the end \ud800"]
    s = il.encode(doc)
    assert len(s) < len(ByteTokenizer().encode("an image of a cat: the end \ud800")) + 8
    assert same(il.decode(s), il.normalize(doc))


def test_known_layout_and_positions() -> None:
    s = IL.encode(["A", {"image_codes": [[1, 2, 3], [4, 5, 6]]}, {"audio_codes": [7, 8]}, "B"])
    I0, A0, i = V.range("image").start, V.range("audio").start, V.id
    assert s.ids.tolist() == [
        i("<bos>"), 65, i("<boi>"), I0 + 1, I0 + 2, I0 + 3, i("<eol>"), I0 + 4, I0 + 5, I0 + 6, i("<eol>"),
        i("<eoi>"), i("<boa>"), A0 + 7, A0 + 8, i("<eoa>"), 66, i("<eos>"),
    ]
    assert s.modality.tolist() == [1, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 0, 1]
    thw = s.pos_thw.tolist()
    assert thw[2] == [2, 2, 2]  # <boi>
    assert thw[3:7] == [[3, 3, 3], [3, 3, 4], [3, 3, 5], [3, 3, 6]]  # row 0 and its <eol>
    assert thw[7:11] == [[3, 4, 3], [3, 4, 4], [3, 4, 5], [3, 4, 6]]  # row 1
    assert thw[11] == [7, 7, 7]  # <eoi>: one past the largest position used
    weighted = Interleaver(V, image=PaletteImages(), audio=LoudnessAudio(), loss_weights={"image": 0.0, "audio": 0.5})
    w = weighted.encode(["A", {"image_codes": [[1]]}, {"audio_codes": [7]}]).loss_weight.tolist()
    assert w == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0]


def test_video_layout_and_positions() -> None:
    codes = torch.arange(12).view(2, 2, 3) % 8  # (t, h, w)
    s = IL.encode([{"video_codes": codes}, "x"])
    v = [V0 + int(c) for c in codes.reshape(-1)]
    assert s.ids.tolist() == [BOS, BOV, *v[0:3], EOL, *v[3:6], EOL, EOF, *v[6:9], EOL, *v[9:12], EOL, EOF, EOV, 120, EOS]
    assert set(s.modality[1:-2].tolist()) == {Modality.VIDEO}
    thw = s.pos_thw.tolist()
    assert thw[2:6] == [[2, 2, 2], [2, 2, 3], [2, 2, 4], [2, 2, 5]]  # frame 0, row 0, then <eol>
    assert thw[10] == [2, 4, 5]  # frame 0's <eof>
    assert thw[11] == [3, 2, 2]  # frame 1 starts one step later in time
    assert thw[20] == [6, 6, 6]  # <eov>: one past the largest position used
    frames = torch.rand(3, 3, 32, 48)
    segs = IL.decode(IL.encode([{"video": frames}]), media=True)
    assert segs[0]["video_codes"].shape == (3, 2, 3) and segs[0]["video"].shape == (3, 3, 32, 48)
    assert pretty(IL.encode([{"video": frames}])) == "[video 0.8 s, 3×2×3]"
    fixed = IL.decode([BOS, BOV, V0 + 1, EOL, V0 + 2, EOL, EOF, V0 + 3, EOL], repair=True)
    assert fixed[0]["video_codes"].tolist() == [[[1], [2]], [[3], [2]]]  # short frame padded from the one before
    assert [r.action for r in fixed.repairs] == ["closed the video", "padded it to 2 rows"]


def test_real_media_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    img.save(tmp_path / "a.png")
    wave = (0.3 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 300)).astype(np.float32)
    sf.write(tmp_path / "b.wav", wave, 16000)
    doc = ["look: ", Path(tmp_path / "a.png"), {"image": img}, {"audio": str(tmp_path / "b.wav")},
           {"audio": wave, "sample_rate": 16000}, Path(tmp_path / "b.wav")]
    s = IL.encode(doc)
    segs = IL.decode(s, media=True)
    assert [tuple(x["image_codes"].shape) for x in segs if "image_codes" in x] == [(3, 4), (3, 4)]
    assert [tuple(x["image"].shape) for x in segs if "image" in x] == [(3, 48, 64)] * 2
    assert [x["audio_codes"].numel() for x in segs if "audio_codes" in x] == [20] * 3
    assert segs[-1]["audio"].shape == (8000,) and segs[-1]["sample_rate"] == 16000
    assert pretty(s) == "look: [image 3×4][image 3×4][audio 0.5 s][audio 0.5 s][audio 0.5 s]"


def test_bad_documents_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="list of segments"):
        IL.encode("just a string")
    with pytest.raises(ValueError, match="segment 1: image code 9 is outside"):
        IL.encode(["x", {"image_codes": [[9]]}])
    with pytest.raises(ValueError, match="no audio tokenizer"):
        Interleaver(V).encode([{"audio": "x.wav"}])
    with pytest.raises(ValueError, match="cannot tell"):
        IL.encode([tmp_path / "notes.txt"])
    with pytest.raises(ValueError, match="codebook_size"):
        Interleaver(Vocabulary(256, ranges={"image": 4}), image=PaletteImages())
    with pytest.raises(mmtok.core.errors.DocumentError, match=r"segment 0 \(image\): image \(8, 8\) is smaller"):
        IL.encode([{"image": Image.new("RGB", (8, 8))}])
    with pytest.raises(mmtok.core.errors.DocumentError, match=r"segment 1 .audio .*missing\.wav"):
        IL.encode(["x", {"audio": str(tmp_path / "missing.wav")}])
    with pytest.raises(StreamError, match="segment 1 audio_codes must be a rectangular array"):
        IL.encode(["x", {"audio_codes": [[1, 2], [3]]}])  # ragged
    batch = (torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 2]))  # what encode of a list of clips gives
    with pytest.raises(StreamError, match=r"segment 0 audio_codes got a \(codes, lengths\) pair.*codes\[i, :lengths\[i\]\]"):
        IL.encode([{"audio_codes": batch}])


# --------------------------------------------------------------------------- malformed streams

i = V.id
I0, A0 = V.range("image").start, V.range("audio").start
V0 = V.range("video").start
BOS, EOS, BOI, EOI, EOL, BOA, EOA = (i(t) for t in ("<bos>", "<eos>", "<boi>", "<eoi>", "<eol>", "<boa>", "<eoa>"))
BOV, EOF, EOV = i("<bov>"), i("<eof>"), i("<eov>")

MALFORMED = {
    "id out of range": ([BOS, 65, V.size, EOS], 2, "an id in [0,"),
    "negative id": ([BOS, -3, EOS], 1, "an id in [0,"),
    "ragged row": ([BOS, BOI, I0, I0, EOL, I0, EOL, EOI, EOS], 6, "row 1 to have 2 codes"),
    "image never closed": ([BOS, BOI, I0, I0, EOL], 5, "<eol> or <eoi>"),
    "audio never closed": ([BOS, BOA, A0, A0], 4, "an audio code or <eoa>"),
    "audio code in image": ([BOS, BOI, I0, A0, EOL, EOI, EOS], 3, "an image code, <eol> or <eoi>"),
    "image code in audio": ([BOS, BOA, A0, I0, EOA, EOS], 3, "an audio code or <eoa>"),
    "image code in text": ([BOS, 65, I0, EOS], 2, "text, <eos>, <boi>, <boa> or <bov>"),
    "stray <eol>": ([BOS, 65, EOL, EOS], 2, "text, <eos>, <boi>, <boa> or <bov>"),
    "stray <eoa>": ([BOS, EOA, EOS], 1, "text, <eos>, <boi>, <boa> or <bov>"),
    "<bos> inside": ([BOS, 65, BOS, EOS], 2, "text, <eos>, <boi>, <boa> or <bov>"),
    "stray <eof>": ([BOS, EOF, EOS], 1, "text, <eos>, <boi>, <boa> or <bov>"),
    "video never closed": ([BOS, BOV, V0, EOL, EOF], 5, "<eol> or <eof>"),
    "frame without <eof>": ([BOS, BOV, V0, EOL, EOV, EOS], 4, "<eof> before <eov>"),
    "frame of another height": ([BOS, BOV, V0, EOL, EOF, V0, EOL, V0, EOL, EOF, EOV], 5, "frame 1 to have 1 rows"),
    "ragged row in video": ([BOS, BOV, V0, V0, EOL, V0, EOL, EOF, EOV], 6, "row 1 to have 2 codes"),
    "image code in video": ([BOS, BOV, I0, EOL, EOF, EOV], 2, "a video code, <eol> or <eof>"),
    "<eoi> in video": ([BOS, BOV, V0, EOI, EOL, EOF, EOV], 3, "a video code, <eol> or <eof>"),
    "empty video": ([BOS, BOV, EOV, EOS], 1, "a video with at least one frame"),
    "tokens after <eos>": ([BOS, 65, EOS, 66], 3, "the end of the stream after <eos>"),
    "row without <eol>": ([BOS, BOI, I0, EOI, EOS], 3, "<eol> before <eoi>"),
    "empty row": ([BOS, BOI, I0, EOL, EOL, EOI, EOS], 4, "an image code"),
    "empty image": ([BOS, BOI, EOI, EOS], 1, "an image with at least one row"),
    "empty audio": ([BOS, BOA, EOA, EOS], 1, "audio with at least one code"),
    "image interrupted by audio": ([BOS, BOI, I0, EOL, BOA, A0, EOA, EOS], 4, "an image code, <eol> or <eoi>"),
    "invalid UTF-8": ([BOS, 0xFF, 65, EOS], 1, "valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_stream_raises_with_position(name: str) -> None:
    ids, position, expected = MALFORMED[name]
    with pytest.raises(StreamError) as err:
        IL.decode(torch.tensor(ids))
    assert err.value.position == position, str(err.value)
    assert expected in str(err.value) and f"position {position}" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, mmtok.MmtokError)
    fixed = IL.decode(ids, repair=True)
    assert fixed.repairs and fixed.repairs[0].position == position
    IL.decode(IL.encode(fixed))  # what repair gives is a valid document


def test_repair_known_answers() -> None:
    ragged = [BOS, BOI, I0 + 1, I0 + 2, EOL, I0 + 3, EOL, I0 + 4, I0 + 5, I0 + 6, EOL]  # short row, long row, open
    fixed = IL.decode(ragged, repair=True)
    assert fixed[0]["image_codes"].tolist() == [[1, 2], [3, 2], [4, 5]]
    assert [r.action for r in fixed.repairs] == ["padded it to 2", "truncated it to 2", "closed the image"]
    fixed = IL.decode([BOS, 72, 105, BOA, A0 + 3, EOS, 99], repair=True)
    assert same(fixed, [{"text": "Hi"}, {"audio_codes": torch.tensor([3])}])
    assert [r.action for r in fixed.repairs] == ["closed the audio", "dropped 1 token(s)"]
    assert IL.decode([65, V.size + 5, 66], repair=True) == [{"text": "AB"}]


def corrupt(ids: list[int], rng: np.random.Generator) -> list[int]:
    out = list(ids)
    for _ in range(int(rng.integers(1, 4))):
        op = rng.integers(0, 4)
        k = int(rng.integers(0, len(out) + 1))
        if op == 0 and out:  # drop a token
            del out[min(k, len(out) - 1)]
        elif op == 1:  # insert any id, a few out of range
            out.insert(k, int(rng.integers(-2, V.size + 2)))
        elif op == 2:  # insert a structural token
            out.insert(k, int(rng.choice([BOS, EOS, BOI, EOI, EOL, BOA, EOA, BOV, EOF, EOV])))
        else:  # truncate, as generation stopped early
            out = out[:k]
    return out


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.integers(0, 2**31))
def test_repair_fixes_generated_streams(doc: list[Any], seed: int) -> None:
    ids = corrupt(IL.encode(doc).ids.tolist(), np.random.default_rng(seed))
    fixed = IL.decode(ids, repair=True)
    try:
        strict = IL.decode(ids)
    except StreamError as e:
        assert fixed.repairs and fixed.repairs[0].position == e.position
    else:
        assert fixed.repairs == [] and same(strict, fixed)
    again = IL.encode(fixed)
    assert same(IL.decode(again), IL.normalize(fixed))  # a valid stream now


def test_pretty_marks_repairs() -> None:
    assert pretty(IL.stream(IL.encode(["hi"]).ids)) == "hi"
    assert IL.pretty([BOS, 104, BOI, I0, EOL]) == "h[image 1×1]  (1 repair)"
    with pytest.raises(ValueError, match="needs the Interleaver"):
        pretty(torch.tensor([1, 2]))  # type: ignore[arg-type]


def _real_tokenizers_missing() -> str:
    import importlib.util

    for name in ("image", "audio"):
        if importlib.util.find_spec(f"mmtok.{name}") is None:
            return f"mmtok.{name} is not there yet"
        if not (Path(__file__).parents[1] / "models" / name / "config.json").is_file():
            return f"models/{name} is not shipped yet"
    return ""


@pytest.mark.skipif(bool(_real_tokenizers_missing()), reason=_real_tokenizers_missing() or "ready")
def test_real_tokenizers_round_trip(tmp_path: Path) -> None:
    image, audio = mmtok.load("image"), mmtok.load("audio")
    il = Interleaver(None, image=image, audio=audio)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    wave = (0.3 * np.sin(np.arange(audio.sample_rate) / audio.sample_rate * 2 * np.pi * 300)).astype(np.float32)
    s = il.encode(["a picture ", {"image": img}, " and a tone ", {"audio": wave, "sample_rate": audio.sample_rate}])
    segs = il.decode(s, media=True)
    assert torch.equal(segs[1]["image_codes"], image.encode(img))
    assert segs[1]["image"].shape[0] == 3 and segs[3]["audio"].dim() == 1
    assert torch.equal(il.encode(il.decode(s)).ids, s.ids)
