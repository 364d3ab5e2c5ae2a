"""The unified vocabulary: fixed layout, lookups, vectorized modality, JSON, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmtok.core.errors import VocabularyError
from mmtok.stream.vocab import SPECIAL_TOKENS, Modality, Vocabulary, tokenizer_fingerprint


def vocab() -> Vocabulary:
    return Vocabulary(256, ranges={"audio": 64, "image": 100}, sources={"text": "b", "image": "i", "audio": "a"})


def test_layout_known_answer() -> None:
    v = vocab()
    assert v.range("text") == range(0, 256)
    assert v.range("special") == range(256, 288)
    assert v.range("image") == range(288, 388)  # image before audio, whatever the mapping order
    assert v.range("audio") == range(388, 452)
    assert v.size == 452
    assert [v.id(t) for t in SPECIAL_TOKENS] == list(range(256, 256 + len(SPECIAL_TOKENS)))
    assert v.token(v.id("<eol>")) == "<eol>" and v.token(300) == "image:12" and v.token(65) == "text:65"
    assert v.token(280) == "<reserved_24>"
    assert v.media == ("image", "audio")
    with pytest.raises(VocabularyError, match="<nope>"):
        v.id("<nope>")
    with pytest.raises(VocabularyError, match="video"):
        v.range("video")


def test_more_specials_fit_in_reserved_room() -> None:
    v = Vocabulary(256, ranges={"image": 8}, specials=(*SPECIAL_TOKENS, "<sep>"))
    assert v.id("<sep>") == 256 + len(SPECIAL_TOKENS)
    assert v.range("image").start == 288  # the extra token used a reserved slot
    with pytest.raises(VocabularyError, match="start with"):
        Vocabulary(256, specials=("<bos>",))
    with pytest.raises(VocabularyError, match="unknown media"):
        Vocabulary(256, ranges={"smell": 3})


def test_modality_of_is_vectorized_and_checked() -> None:
    v = vocab()
    ids = torch.tensor([[0, 255, 256, 287], [288, 387, 388, 451]])
    assert v.modality_of(ids).tolist() == [[0, 0, 1, 1], [2, 2, 3, 3]]
    big = np.random.default_rng(0).integers(0, v.size, 100_000)
    mod = v.modality_of(big)
    assert mod.dtype == np.uint8 and ((mod == Modality.IMAGE) == ((big >= 288) & (big < 388))).all()
    with pytest.raises(VocabularyError, match="452"):
        v.modality_of([1, 452])
    with pytest.raises(VocabularyError, match="-1"):
        v.modality_of([-1])


def test_stream_modality_counts_markers_with_their_segment() -> None:
    v = vocab()
    i = v.id
    ids = [i("<bos>"), 65, i("<boi>"), 290, i("<eol>"), i("<eoi>"), i("<boa>"), 390, i("<eoa>"), i("<eos>")]
    assert v.stream_modality(ids).tolist() == [1, 0, 2, 2, 2, 2, 3, 3, 3, 1]


def test_json_round_trip_and_fingerprint() -> None:
    v = vocab()
    again = Vocabulary.from_json(v.to_json())
    assert again == v and again.fingerprint == v.fingerprint and again.size == v.size
    other = Vocabulary(256, ranges={"image": 100, "audio": 64}, sources={"text": "b", "image": "X", "audio": "a"})
    assert other.fingerprint != v.fingerprint
    v.check_same(again)
    with pytest.raises(VocabularyError, match="image tokenizer: i vs X"):
        other.check_same(v, what="shards in out/")
    bigger = Vocabulary(256, ranges={"image": 128, "audio": 64}, sources=v.sources)
    with pytest.raises(VocabularyError, match="image range size: 100 vs 128"):
        bigger.check_same(v)
    d = v.to_dict()
    d["size"] = 7
    with pytest.raises(VocabularyError, match="size"):
        Vocabulary.from_dict(d)
    d = v.to_dict()
    d["fingerprint"] = "0" * 16
    with pytest.raises(VocabularyError, match="fingerprint"):
        Vocabulary.from_dict(d)


def test_for_tokenizers_hashes_weights() -> None:
    class Tok(torch.nn.Module):
        codebook_size = 16

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))

    class Text:
        vocab_size = 300
        fingerprint = "t"

    a, b = Tok(), Tok()
    assert tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
    with torch.no_grad():
        b.w[0] = 1
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(b)
    v = Vocabulary.for_tokenizers(text=Text(), image=a)
    assert v.text_size == 300 and len(v.range("image")) == 16 and v.sources["text"] == "t"
    assert "image tokenizer" in "; ".join(Vocabulary.for_tokenizers(text=Text(), image=b).differences(v))


def test_labels_name_the_checkpoints_in_messages_but_not_in_identity(tmp_path) -> None:
    from image_helpers import tiny_config

    from mmtok.core.module_io import load_module, save_module
    from mmtok.image.tokenizer import ImageTokenizer
    from mmtok.stream.text import ByteTokenizer

    torch.manual_seed(0)
    cfg = tiny_config()
    folder = save_module(ImageTokenizer(cfg), tmp_path / "img", provenance={"model_version": "image v9"})
    old = Vocabulary.for_tokenizers(text=ByteTokenizer(), image=load_module(ImageTokenizer, folder))
    assert old.labels["image"].startswith("img (image v9, saved ") and "by mmtok" in old.labels["image"]
    assert Vocabulary.from_json(old.to_json()).labels == old.labels
    plain = Vocabulary.for_tokenizers(text=ByteTokenizer(), image=ImageTokenizer(cfg))  # not from a checkpoint
    assert plain.labels == {} and plain.fingerprint != old.fingerprint  # other weights
    same = Vocabulary(old.text_size, ranges={"image": len(old.range("image"))}, sources=old.sources)  # no labels
    assert same == old and same.fingerprint == old.fingerprint
    with pytest.raises(VocabularyError, match=r"image tokenizer: \w+ \[img \(image v9, saved .*\] vs \w+\. "):
        plain.check_same(old)
