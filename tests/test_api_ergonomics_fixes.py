"""Python API ergonomics: stacked audio clips said to be mixed, typed decode and load overloads, image batches
given as a list of code grids or a numpy array, a list of video files, a batched encode's pair for
decode_features, the Interleaver's repr and a quantizer result that unpacks."""

from __future__ import annotations

import sys
import typing
import warnings

import numpy as np
import pytest
import torch

import mmtok.pretrained
from mmtok.audio import MixedChannelsWarning
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError, ImageError, VideoError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import QuantizeResult, VectorQuantizer, VQConfig

BATCH_SAID = "a batch is a list of clips"


@pytest.fixture(scope="module")
def audio_tok() -> AudioTokenizer:
    torch.manual_seed(0)
    cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=64), encoder_channels=32, decoder_channels=32)
    return AudioTokenizer(cfg).eval()


@pytest.fixture(scope="module")
def image_tok() -> ImageTokenizer:
    torch.manual_seed(0)
    return ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval()


def _clips(rows: int, samples: int = 1600) -> torch.Tensor:
    return torch.randn(rows, samples, generator=torch.Generator().manual_seed(rows)) * 0.1


# --------------------------------------------------------------------------- stacked audio clips


def test_a_stacked_batch_of_clips_is_mixed_with_one_warning_that_says_what_a_batch_is(audio_tok):
    x = _clips(4)
    with pytest.warns(MixedChannelsWarning, match=BATCH_SAID) as said:
        codes = audio_tok.encode(x, 16000)
    assert len(said) == 1 and said[0].message.channels == 4 and "4 channels" in str(said[0].message)
    assert "(4, 1600)" in str(said[0].message)
    assert torch.equal(codes, audio_tok.encode(x.mean(0), 16000))  # the rule is kept: the rows are mixed
    with pytest.warns(MixedChannelsWarning):  # channels last as well
        load_audio(x.T.numpy(), 16000)


def test_stereo_mono_and_files_are_not_warned_about(audio_tok, tmp_path):
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "four.wav"
    sf.write(path, _clips(4).T.numpy(), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio_tok.encode(_clips(2), 16000)
        audio_tok.encode(_clips(1)[0], 16000)
        load_audio(path)  # a file's channels are its own


@pytest.mark.parametrize("x", [_clips(4)[:, None], _clips(17)], ids=["[B, 1, S]", "17 rows"])
def test_shapes_that_look_like_a_batch_say_what_a_batch_is(audio_tok, x):
    with pytest.raises(AudioError, match=BATCH_SAID):
        audio_tok.encode(x, 16000)


# --------------------------------------------------------------------------- typing


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is new in Python 3.11")
def test_decode_and_load_have_overloads_that_give_one_type_each():
    def returns(fn):
        return sorted(str(f.__annotations__["return"]) for f in typing.get_overloads(fn))

    assert returns(AudioTokenizer.decode) == ["list[torch.Tensor]", "list[torch.Tensor]", "torch.Tensor"]
    assert returns(AudioTokenizer.decode_features) == ["list[torch.Tensor]", "list[torch.Tensor]", "torch.Tensor"]
    assert returns(AudioTokenizer.encode) == ["torch.Tensor", "tuple[torch.Tensor, torch.Tensor]"]
    assert returns(mmtok.pretrained.load) == ["Any", "AudioTokenizer", "ImageTokenizer", "VideoTokenizer"]


# --------------------------------------------------------------------------- image batches


def test_image_decode_takes_a_list_of_code_grids_as_a_batch(image_tok):
    codes = image_tok.encode(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(image_tok.decode([codes[0], codes[1]]), image_tok.decode(codes))
    assert torch.equal(image_tok.decode((codes[0].numpy(), codes[1])), image_tok.decode(codes))
    with pytest.raises(ImageError, match=r"one shape .*\(2, 2\), \(2, 3\)"):
        image_tok.decode([codes[0], torch.zeros(2, 3, dtype=torch.long)])


def test_a_numpy_batch_channels_last_is_a_batch_of_numpy_images(image_tok):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    codes = image_tok.encode(batch)
    assert codes.shape == (3, 2, 2)
    assert torch.equal(codes, image_tok.encode(list(batch)))
    assert torch.equal(image_tok.preprocess(batch), image_tok.preprocess(list(batch)))


def test_batch_messages_name_the_shape_passed_and_what_a_batch_is(image_tok):
    forms = "a batch is a torch [B, 3, H, W] tensor, a numpy [B, H, W, 3] array or a list of images"
    with pytest.raises(ImageError) as e:
        image_tok.encode(np.zeros((2, 3, 32, 32), np.float32))
    assert "ndarray of shape (2, 3, 32, 32)" in str(e.value) and forms in str(e.value)
    assert "torch.from_numpy(x)" in str(e.value)
    with pytest.raises(ImageError) as e:
        image_tok.encode(torch.rand(2, 32, 32, 3))
    assert "Tensor of shape (2, 32, 32, 3)" in str(e.value) and forms in str(e.value)
    assert "x.permute(0, 3, 1, 2)" in str(e.value)
    bad = torch.rand(3, 3, 32, 32)
    bad[2, 0, 5, 5] = float("nan")
    with pytest.raises(ImageError, match=r"image 2 of the batch Tensor of shape \(3, 3, 32, 32\)"):
        image_tok.encode(bad)
    with pytest.raises(ImageError, match="empty batch"):
        image_tok.encode(np.zeros((0, 32, 32, 3), np.uint8))


# --------------------------------------------------------------------------- video


def test_a_list_of_video_files_says_a_list_is_the_frames_of_one_video(image_tok, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    vt = VideoTokenizer(image_tok, fps=1.0)
    with pytest.raises(VideoError, match=r"clip\.mp4.*frames of one video.*one at a time"):
        vt.encode([str(clip), str(clip)])
    with pytest.raises(ImageError) as e:  # a list of arrays with a bad frame: the frame's own message
        vt.encode([np.zeros((32, 32, 3), np.uint8), np.zeros((2, 3, 32, 32), np.uint8)])
    assert "one video" not in str(e.value)


# --------------------------------------------------------------------------- audio decode_features


def test_decode_features_takes_what_a_batched_encode_returns(audio_tok):
    clips = [_clips(1, 3200)[0], _clips(1, 1600)[0]]
    batch = audio_tok.encode(clips, 16000)
    mels = audio_tok.decode_features(batch)
    assert isinstance(mels, list) and [tuple(m.shape) for m in mels] == [(80, 20), (80, 10)]
    for mel, clip in zip(mels, clips, strict=True):
        assert torch.equal(mel, audio_tok.decode_features(audio_tok.encode(clip, 16000)))
    again = audio_tok.decode_features(batch[0], lengths=batch[1])
    assert all(torch.equal(a, b) for a, b in zip(again, mels, strict=True))


# --------------------------------------------------------------------------- repr and unpacking


def test_interleaver_repr_shows_its_vocabulary_and_tokenizers(image_tok):
    il = Interleaver(None, image=image_tok, bos=False)
    text = repr(il)
    assert text.startswith(f"Interleaver({il.vocab!r}, text=ByteTokenizer(), image=ImageTokenizer(")
    assert "codebook_size=1024" in text and "bos=False" in text and "\n" not in text
    image_tok.checkpoint_label = "image (a test)"
    try:
        assert "image=ImageTokenizer('image (a test)')" in repr(il)
    finally:
        del image_tok.checkpoint_label
    plain = Interleaver(Vocabulary(256, ranges={"audio": 8}), loss_weights={"text": 0.5})
    assert repr(plain) == ("Interleaver(Vocabulary(size=296, text=256, special=32, audio=8), text=ByteTokenizer(), "
                           "loss_weights={'text': 0.5})")


def test_a_quantizer_result_unpacks_as_quantized_indices_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16))
    x = torch.randn(4, 5, 8, requires_grad=True)
    result = vq(x)
    assert isinstance(result, QuantizeResult)
    quantized, indices, loss = result
    assert quantized is result.quantized and indices is result.indices and loss is result.loss
    assert quantized.shape == (4, 5, 8) and indices.shape == (4, 5) and loss.dim() == 0
    (quantized.sum() + loss).backward()
    assert x.grad is not None


def test_the_audio_warnings_a_caller_filters_are_on_the_package_face() -> None:
    """``mmtok.audio`` hands on the warnings a caller filters by class, wherever their module lives."""
    import mmtok.audio
    from mmtok.audio.arrays import MixedChannelsWarning as home
    from mmtok.audio.io import SilenceWarning

    assert mmtok.audio.MixedChannelsWarning is home and mmtok.audio.SilenceWarning is SilenceWarning
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", mmtok.audio.MixedChannelsWarning)
        mmtok.load_audio(np.zeros((4, 1600), np.float32) + 0.1, 16000)
    assert not [w for w in said if issubclass(w.category, home)]
