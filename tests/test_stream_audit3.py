"""Interleaver and Vocabulary as a user building training data by hand: documents of any iterable, a decoded
document with its media fed back, streams of another vocabulary, given positions, and layouts that must
survive to_dict/from_dict."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok import Interleaver, Vocabulary, pretty
from mmtok.core.checkpoint import MAX_CONFIG_INT
from mmtok.core.errors import DocumentError, StreamError, VocabularyError


class Codes:
    """A media tokenizer whose codes are its input (decode returns them too)."""

    def __init__(self, k: int, fingerprint: str) -> None:
        self.codebook_size, self.fingerprint = k, fingerprint

    def encode(self, x):
        return x

    def decode(self, codes):
        return codes


def test_a_generator_of_segments_is_a_document():
    il = Interleaver(None, image=Codes(16, "img"))
    doc = ["a ", {"image_codes": [[1, 2], [3, 4]]}, " b"]
    assert torch.equal(il.encode(seg for seg in doc).ids, il.encode(doc).ids)
    assert torch.equal(il.encode(iter(doc)).ids, il.encode(tuple(doc)).ids)


@pytest.mark.parametrize(("doc", "hint"), [("just text", "for one segment pass [doc]"),
                                           ({"text": "t"}, "for one segment pass [doc]"),
                                           (Path("a.png"), "for one segment pass [doc]"),
                                           ({"segments": ["t"]}, "for a JSONL line's document pass doc['segments']"),
                                           (torch.tensor([257, 65, 258]), "for ids, Interleaver.stream(ids) makes")])
def test_a_document_that_is_no_list_says_how_to_pass_it(doc, hint):
    with pytest.raises(TypeError, match=r"a document is a list of segments, got \w+: " + re.escape(hint)):
        Interleaver(None).encode(doc)


def test_a_segment_decoded_with_its_media_is_refused_with_what_to_keep():
    il = Interleaver(None, image=Codes(16, "img"), audio=Codes(8, "aud"))
    segs = il.decode(il.encode(["x", {"image_codes": [[1, 2]]}, {"audio_codes": [3, 4]}]), media=True)
    for k in (1, 2):
        with pytest.raises(DocumentError, match=r"segment 0 holds both .* media=True.* keep one"):
            il.encode([segs[k]])
    kept = [{key: v for key, v in s.items() if key in ("text", "image_codes", "audio_codes")} for s in segs]
    assert torch.equal(il.encode(kept).ids, il.encode(["x", {"image_codes": [[1, 2]]}, {"audio_codes": [3, 4]}]).ids)


@pytest.mark.parametrize("seg", [{"image_codes": [[1]], "sample_rate": 16000}, {"text": "a", "sample_rate": 8000}])
def test_a_sample_rate_on_no_audio_segment_is_refused(seg):
    il = Interleaver(None, image=Codes(16, "img"), audio=Codes(8, "aud"))
    with pytest.raises(DocumentError, match="sample_rate belongs to an audio segment"):
        il.encode([seg])
    assert len(il.encode([{"audio_codes": [1], "sample_rate": 16000}])) == 5  # what decode(media=True) leaves


def test_a_stream_of_another_vocabulary_is_refused_not_read_as_wrong_codes():
    mine = Interleaver(None, image=Codes(16, "image-A"))
    other = Interleaver(None, image=Codes(16, "image-B"))  # same sizes, another codebook
    s = other.encode(["hi", {"image_codes": [[1, 2], [3, 4]]}])
    for call in (lambda: mine.decode(s), lambda: mine.pretty(s), lambda: pretty(s, mine)):
        with pytest.raises(VocabularyError, match=r"another vocabulary .*image tokenizer: image-B vs image-A"):
            call()
    assert mine.decode(s.ids)[1]["image_codes"].tolist() == [[1, 2], [3, 4]]  # bare ids: the caller's word
    assert other.decode(s)[1]["image_codes"].tolist() == [[1, 2], [3, 4]]
    assert Interleaver(None, image=Codes(16, "image-B")).decode(s)[0] == {"text": "hi"}  # an equal vocabulary


def test_stream_with_given_positions_is_checked_too():
    il = Interleaver(None, image=Codes(16, "img"))
    good = il.encode(["a", {"image_codes": [[1, 2]]}])
    assert torch.equal(il.stream(good.ids, pos_thw=good.pos_thw).pos_thw, good.pos_thw)
    with pytest.raises(StreamError, match="expected"):
        il.stream([il.BOS, 65, il.BOI, il.EOS], pos_thw=np.zeros((4, 3), np.int64))
    with pytest.raises(StreamError, match=r"pos_thw must be \[L, 3\] for the 8 ids given, got shape \(3, 3\)"):
        il.stream(good.ids, pos_thw=np.zeros((3, 3), np.int64))


@pytest.mark.parametrize("kwargs", [dict(text_size=True), dict(text_size=MAX_CONFIG_INT + 1),
                                    dict(ranges={"image": MAX_CONFIG_INT}), dict(n_special=40.5),
                                    dict(ranges={"audio": 2.0})])
def test_vocabulary_refuses_a_layout_that_from_dict_would_not_read_back(kwargs):
    with pytest.raises(VocabularyError, match=r"vocabulary|range"):
        Vocabulary(**kwargs)


def test_vocabulary_round_trip_and_layout_offsets():
    v = Vocabulary(300, ranges={"video": 7, "image": 5, "audio": 3}, sources={"text": "t", "image": "i"})
    assert Vocabulary.from_dict(v.to_dict()) == v and Vocabulary.from_json(v.to_json()).fingerprint == v.fingerprint
    assert [v.range(m) for m in ("text", "special", "image", "audio", "video")] == [
        range(0, 300), range(300, 332), range(332, 337), range(337, 340), range(340, 347)]
    assert [v.id(t) for t in ("<pad>", "<bos>", "<eos>", "<boi>", "<eoi>", "<eol>")] == list(range(300, 306))
    big = Vocabulary(MAX_CONFIG_INT - 32)  # the largest there is still reads back
    assert Vocabulary.from_dict(big.to_dict()).size == MAX_CONFIG_INT


def test_an_id_past_the_vocabulary_says_what_to_do():
    il = Interleaver(None)
    with pytest.raises(StreamError, match=r"position 2: expected an id in \[0, 288\), got 300 \(ids of another "
                                          r"vocabulary\? .*Interleaver that made them; repair=True drops them\)"):
        il.decode([il.BOS, 65, 300, il.EOS])
    assert il.decode([il.BOS, 65, 300, il.EOS], repair=True)[0] == {"text": "A"}


class Bytes:
    """A user's text tokenizer: UTF-8 bytes, with a fingerprint."""

    fingerprint = "user-bytes"

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids, errors="replace"):
        return bytes(int(i) for i in ids).decode(errors=errors)


def test_a_tokenizer_without_its_size_is_refused_by_name():
    with pytest.raises(TypeError, match="the text tokenizer Bytes has no vocab_size: give it one"):
        Interleaver(None, text=Bytes())
    with pytest.raises(TypeError, match="the image tokenizer Codes has no codebook_size"):
        Interleaver(None, image=type("Codes", (), {"fingerprint": "x"})())
    sized = type("Sized", (Bytes,), {"vocab_size": 256})()
    with pytest.raises(TypeError, match="the text tokenizer Codes has no vocab_size"):
        Interleaver(Interleaver(None, text=sized).vocab, text=type("Codes", (), {"fingerprint": "user-bytes"})())


def test_a_text_decode_without_errors_keyword_is_named_on_decode():
    class Plain(Bytes):
        vocab_size = 256

        def decode(self, ids):
            return bytes(int(i) for i in ids).decode()

    il = Interleaver(None, text=Plain())
    s = il.encode(["hé", {"text": "llo"}])  # encoding needs no decode
    with pytest.raises(TypeError, match=r"Plain's decode takes no errors= keyword: give it decode\(ids, errors="):
        il.decode(s)
    assert Interleaver(None, text=type("Sized", (Bytes,), {"vocab_size": 256})()).decode(s)[0] == {"text": "héllo"}


def test_a_vocabulary_whose_fingerprint_was_edited_says_so_and_what_to_do():
    d = Vocabulary(256, ranges={"image": 16}).to_dict()
    d["ranges"]["image"] = 17
    with pytest.raises(VocabularyError, match=r"fingerprint '\w{16}' does not match .* edited or damaged; put back"):
        Vocabulary.from_dict({**d, "size": 305})


def test_positions_of_a_1x1_image_and_a_two_frame_video_by_hand():
    il = Interleaver(None, image=Codes(4, "img"), video=Codes(4, "vid"))
    s = il.encode(["a", {"image_codes": [[0]]}, {"video_codes": [[[1, 2]], [[3, 0]]]}])
    assert s.pos_thw.tolist() == [
        [0, 0, 0], [1, 1, 1],  # <bos> a
        [2, 2, 2], [3, 3, 3], [3, 3, 4], [5, 5, 5],  # <boi> code <eol> <eoi>
        [6, 6, 6],  # <bov>
        [7, 7, 7], [7, 7, 8], [7, 7, 9], [7, 8, 9],  # frame 0: codes, <eol>, <eof>
        [8, 7, 7], [8, 7, 8], [8, 7, 9], [8, 8, 9],  # frame 1
        [10, 10, 10], [11, 11, 11]]  # <eov> <eos>
    assert torch.equal(il.stream(s.ids).pos_thw, s.pos_thw)
