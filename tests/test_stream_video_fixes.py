"""A copied Stream keeps its Interleaver, an Interleaver refuses <bos>/<eos> it does not write, and a video tokenizer
built by hand is labelled by what it is built from."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.core.errors import StreamError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream.interleave import Interleaver, pretty
from mmtok.stream.text import ByteTokenizer
from mmtok.stream.vocab import Vocabulary
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import VQConfig

V = Vocabulary(256, ranges={"image": 16})
DOC = ["hi ", {"image_codes": [[1, 2], [3, 4]]}]


def tiny_image(seed: int = 0) -> ImageTokenizer:
    torch.manual_seed(seed)
    cfg = ImageTokenizerConfig(image_size=32, patch=4, enc_channels=(16, 32), dec_channels=(32, 16),
                               latent_dim=16, vq=VQConfig(dim=16, codebook_size=64))
    return ImageTokenizer(cfg).eval()


# --------------------------------------------------------------------------- 1: copies of a stream


def test_a_deep_copy_of_a_stream_keeps_its_interleaver_and_copies_its_ids() -> None:
    il = Interleaver(V)
    s = il.encode(DOC)
    c = copy.deepcopy(s)
    assert c.interleaver is il and c.interleaver.image is il.image  # nothing of the tokenizers copied
    assert pretty(c) == pretty(s) == "hi [image 2×2]"
    assert il.decode(c)[1]["image_codes"].tolist() == [[1, 2], [3, 4]]
    c.ids[1] = 65
    assert s.ids[1].item() == 104 and c.pos_thw is not s.pos_thw  # its own tensors
    twice = copy.deepcopy([s, s])
    assert twice[0] is twice[1]


def test_a_shallow_copy_shares_everything_and_a_pickle_still_leaves_the_interleaver_out() -> None:
    il = Interleaver(V)
    s = il.encode(DOC)
    c = copy.copy(s)
    assert c is not s and c.interleaver is il and c.ids is s.ids and pretty(c) == "hi [image 2×2]"
    back = pickle.loads(pickle.dumps(s))
    assert back.interleaver is None and s.interleaver is il and back.ids.tolist() == s.ids.tolist()


# --------------------------------------------------------------------------- 2: markers an interleaver does not write


@pytest.mark.parametrize(("flags", "ids", "mark", "at"), [
    ({"bos": False, "eos": False}, ["<eos>"], "eos", 0),
    ({"bos": False, "eos": False}, [104, "<eos>"], "eos", 1),
    ({"bos": False, "eos": False}, ["<bos>"], "bos", 0),
    ({"bos": False, "eos": False}, ["<bos>", 104], "bos", 0),
    ({"bos": True, "eos": False}, ["<bos>", 104, "<eos>"], "eos", 2),
    ({"bos": False, "eos": True}, ["<bos>", 104, "<eos>"], "bos", 0),
])
def test_a_marker_the_interleaver_does_not_write_is_refused_or_dropped(
        flags: dict[str, bool], ids: list, mark: str, at: int) -> None:
    il = Interleaver(V, **flags)
    ids = [V.id(t) if isinstance(t, str) else t for t in ids]
    expected = "text, <eos> or <boi>" if flags["eos"] else "text or <boi>"
    msg = rf"^position {at}: expected {expected} \(Interleaver\({mark}=False\) writes no <{mark}>\), got <{mark}>$"
    for partial in (False, True):
        with pytest.raises(StreamError, match=msg) as e:
            il.decode(ids, partial=partial)
        assert e.value.position == at
    fixed = il.decode(ids, repair=True)
    assert [(r.position, r.action) for r in fixed.repairs] == [(at, "dropped it")]
    assert fixed == ([{"text": "h"}] if 104 in ids else [])


def test_what_an_interleaver_writes_still_reads_back_clean() -> None:
    for bos in (False, True):
        for eos in (False, True):
            il = Interleaver(V, bos=bos, eos=eos)
            got = il.decode(il.encode(DOC))
            assert got.repairs == [] and got[0] == {"text": "hi "}
    bare = Interleaver(Vocabulary(256), bos=False, eos=False)
    with pytest.raises(StreamError, match=r"^position 0: expected text \(Interleaver\(eos=False\) writes no <eos>\)"):
        bare.decode([bare.EOS])


# --------------------------------------------------------------------------- 3: a video tokenizer built by hand


def test_a_video_tokenizer_built_by_hand_is_labelled_by_its_parts() -> None:
    image = tiny_image()
    built = {
        "1 fps": VideoTokenizer(image, fps=1.0),
        "2 fps": VideoTokenizer(image, fps=2.0),
        "2.5 fps": VideoTokenizer(image, fps=2.5),
        "repeat": VideoTokenizer(image, fps=1.0, temporal="repeat"),
        "size": VideoTokenizer(image, fps=1.0, size=64),
        "other image": VideoTokenizer(tiny_image(seed=1), fps=1.0),
    }
    labels = {k: Vocabulary.for_tokenizers(text=ByteTokenizer(), video=v).labels["video"] for k, v in built.items()}
    assert labels["1 fps"] == f"video: an image tokenizer of fingerprint {image.fingerprint} at 1 fps"
    assert labels["2.5 fps"].endswith(" at 2.5 fps")
    assert labels["repeat"].endswith(" at 1 fps, temporal repeat") and labels["size"].endswith(", size 64")
    assert len(set(labels.values())) == len(labels)


def test_a_loaded_image_names_the_video_while_it_is_as_loaded(tmp_path: Path) -> None:
    image = mmtok.load(mmtok.save(tiny_image(), tmp_path / "img"))
    vt = VideoTokenizer(image, fps=1.0)
    assert vt.checkpoint_label == f"video: {image.checkpoint_label} at 1 fps"
    with torch.no_grad():
        next(image.parameters()).add_(1.0)  # fine-tuned after loading: no longer what the label names
    assert vt.checkpoint_label == f"video: an image tokenizer of fingerprint {image.fingerprint} at 1 fps"
    again = mmtok.load(mmtok.save(vt, tmp_path / "vid"))
    assert again.checkpoint_label.startswith("vid (")  # a video checkpoint keeps its folder's label


def test_the_shipped_build_made_by_hand_has_the_shipped_label() -> None:
    shipped = mmtok.load("video")
    by_hand = VideoTokenizer(mmtok.load("image"), fps=1.0).eval()
    vocabs = [Vocabulary.for_tokenizers(text=ByteTokenizer(), video=v) for v in (shipped, by_hand)]
    assert vocabs[0].labels == vocabs[1].labels and vocabs[0].fingerprint == vocabs[1].fingerprint
    assert by_hand.checkpoint_label == shipped.checkpoint_label
