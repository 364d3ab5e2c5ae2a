"""Streams: a BPE folder read by its recorded fingerprint, tokenizers that must name themselves, text joined once,
truncated streams, slices and empty streams, malformed vocabulary dicts and positions worked out by hand."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import mmtok.stream.interleave as interleave
from mmtok.core.errors import CheckpointError, StreamError, VocabularyError
from mmtok.core.protocol import module_fingerprint
from mmtok.stream.interleave import Interleaver
from mmtok.stream.positions import positions_thw
from mmtok.stream.text import BPETokenizer, ByteTokenizer, train_bpe
from mmtok.stream.vocab import Vocabulary, tokenizer_fingerprint

CORPUS = ["the quick brown fox jumps over the lazy dog", "héllo wörld, 你好世界 🙂\tand\nlines"] * 40
V = Vocabulary(256, ranges={"image": 16, "audio": 16, "video": 16})
IL = Interleaver(V)
I0, A0 = V.range("image").start, V.range("audio").start


class Codebook:
    """A media tokenizer that is not an nn.Module: codes come from its table, which no size or class name shows."""

    codebook_size = 8
    grid = (1, 1)

    def __init__(self, table: list[int]) -> None:
        self.table = table

    def encode(self, x: Any) -> torch.Tensor:
        return torch.tensor([[self.table[int(x) % 8]]])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float()


class Named(Codebook):
    def __init__(self, fingerprint: str) -> None:
        super().__init__(list(range(8)))
        self.fingerprint = fingerprint


# --------------------------------------------------------------------------- BPE folders


def _old_format(folder: Path) -> str:
    """Rewrite ``folder``'s tokenizer.json as an older ``tokenizers`` saved it (each merge one "a b" string) and
    record its hash in config.json, as save did then; the new text."""
    doc = json.loads((folder / "tokenizer.json").read_text())
    doc["model"]["merges"] = [" ".join(m) for m in doc["model"]["merges"]]
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    (folder / "tokenizer.json").write_text(text, encoding="utf-8")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["fingerprint"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    (folder / "config.json").write_text(json.dumps(meta))
    return text


def test_a_bpe_saved_in_an_older_format_loads_with_the_fingerprint_it_recorded(tmp_path: Path) -> None:
    bpe = train_bpe(CORPUS, vocab_size=300)
    folder = bpe.save(tmp_path / "bpe")
    text = _old_format(folder)
    recorded = json.loads((folder / "config.json").read_text())["config"]["fingerprint"]
    assert recorded != bpe.fingerprint  # the old serialization differs from this version's
    again = BPETokenizer.load(folder)
    assert again.fingerprint == recorded
    assert [again.encode(t) for t in CORPUS[:2]] == [bpe.encode(t) for t in CORPUS[:2]]
    (folder / "tokenizer.json").write_text(text.replace('"Ġ":', '"Ġx":', 1), encoding="utf-8")  # damaged
    with pytest.raises(CheckpointError, match=r"tokenizer\.json does not match config\.json"):
        BPETokenizer.load(folder)


def test_a_bpe_that_changes_text_is_refused() -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers

    made = train_bpe(CORPUS, vocab_size=300)._tok.to_str()
    nfc = Tokenizer.from_str(made)
    nfc.normalizer = normalizers.NFC()
    prefix = Tokenizer.from_str(made)
    prefix.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    for tok in (nfc, prefix):
        with pytest.raises(CheckpointError, match="does not give text back as it was"):
            BPETokenizer(tok)
    ok = BPETokenizer(Tokenizer.from_str(made))
    assert ok.decode(ok.encode("cafe\u0301 x")) == "cafe\u0301 x"


# --------------------------------------------------------------------------- tokenizer identity


def test_a_tokenizer_without_a_fingerprint_is_refused_unless_it_is_a_module() -> None:
    a, b = Codebook([0, 1, 2, 3, 4, 5, 6, 7]), Codebook([7, 6, 5, 4, 3, 2, 1, 0])
    for tok in (a, b):
        with pytest.raises(VocabularyError, match="has no fingerprint: give it a `fingerprint` string"):
            Vocabulary.for_tokenizers(text=ByteTokenizer(), image=tok)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        module_fingerprint(a)
    m1, m2 = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert tokenizer_fingerprint(m1) != tokenizer_fingerprint(m2)  # weights tell modules apart
    assert tokenizer_fingerprint(Named("mine")) == "mine"


def test_the_interleaver_refuses_tokenizers_its_vocabulary_did_not_record() -> None:
    class OtherBytes(ByteTokenizer):
        fingerprint = "other-bytes"

    vocab = Vocabulary.for_tokenizers(text=ByteTokenizer(), image=Named("img-a"))
    Interleaver(vocab, text=ByteTokenizer(), image=Named("img-a"))  # the same ones
    with pytest.raises(VocabularyError, match=r"text tokenizer with fingerprint byte-utf8.*has fingerprint other-bytes"):
        Interleaver(vocab, text=OtherBytes(), image=Named("img-a"))
    with pytest.raises(VocabularyError, match=r"fingerprint img-a.*fingerprint img-b"):
        Interleaver(vocab, image=Named("img-b"))
    Interleaver(Vocabulary(256, ranges={"image": 8}), image=Named("img-b"))  # no sources recorded: sizes only


# --------------------------------------------------------------------------- text joined once


def _cpu_seconds(run: Callable[[], object]) -> tuple[float, object]:
    start = time.process_time()
    out = run()
    return time.process_time() - start, out


def test_adjacent_text_segments_are_joined_once() -> None:
    """Joined pairwise, 5,000 pieces of a 10 MB text copy ~25 GB: hundreds of times the work of the same text in
    one piece. Each is held to the one-piece (or clean) run of the same moment (so a busy machine slows both alike)."""
    one, _ = _cpu_seconds(lambda: IL.normalize(["x" * 10_000_000]))
    many, out = _cpu_seconds(lambda: IL.normalize(["x" * 1999 + "\n"] * 5000))
    assert many < 20 * one + 0.5
    assert len(out) == 1 and len(out[0]["text"]) == 10_000_000  # type: ignore[index]
    clean, _ = _cpu_seconds(lambda: IL.decode([IL.BOS, *[65] * 5_000_000, IL.EOS]))
    ids = ([65] * 1000 + [IL.EOL]) * 5000  # 5,000 stray tokens dropped inside one text
    repaired, fixed = _cpu_seconds(lambda: IL.decode([IL.BOS, *ids, IL.EOS], repair=True))
    assert repaired < 5 * clean + 0.5
    assert fixed == [{"text": "A" * 5_000_000}] and len(fixed.repairs) == 5000  # type: ignore[attr-defined]


def test_a_dropped_token_inside_a_character_leaves_the_character_whole() -> None:
    ids = [IL.BOS, *b"ca\xc3", IL.EOL, *b"\xa9 noir", IL.EOS]
    fixed = IL.decode(ids, repair=True)
    assert fixed == [{"text": "caé noir"}]
    assert [str(r) for r in fixed.repairs] == [
        "position 4: expected text, <eos>, <boi>, <boa> or <bov>, got <eol>; dropped it"]
    with pytest.raises(StreamError) as e:
        IL.decode(ids)
    assert e.value.position == 4  # strict stops where the repair starts


# --------------------------------------------------------------------------- truncated streams


def test_a_stream_that_lost_its_end_or_its_start_is_malformed() -> None:
    ids = IL.encode(["hi", {"audio_codes": [1, 2]}]).ids.tolist()
    with pytest.raises(StreamError, match=r"position 7: expected <eos>, got the end of the stream") as e:
        IL.decode(ids[:-1])
    assert e.value.position == 7
    fixed = IL.decode(ids[:-1], repair=True)
    assert len(fixed) == 2 and [r.action for r in fixed.repairs] == ["ended the document there"]
    assert IL.pretty(ids[:-1]) == "hi[audio 2 codes]  (1 repair)"
    assert IL.decode(ids[:-1], partial=True).repairs == []  # a sample stopped by its budget
    assert IL.pretty(ids[:-1], partial=True) == "hi[audio 2 codes]"
    with pytest.raises(StreamError, match="position 0: expected <bos>, got text:104"):
        IL.decode(ids[1:])
    assert [r.action for r in IL.decode(ids[1:], repair=True).repairs] == ["read on without it"]
    cut = IL.decode(ids[:5], repair=True)  # inside the audio: closing it says the stream was cut, once
    assert [r.action for r in cut.repairs] == ["closed the audio"]
    bare = Interleaver(V, bos=False, eos=False)
    assert bare.decode(bare.encode(["hi"]).ids).repairs == []


def test_partial_reads_a_slice_that_lost_its_start_its_end_or_both() -> None:
    ids = IL.encode(["hi", {"audio_codes": [1, 2]}]).ids.tolist()
    for cut in (ids[1:], ids[:-1], ids[1:-1]):  # no <bos>, no <eos> (a sample stopped by its budget), neither
        got = IL.decode(cut, partial=True)
        assert got.repairs == [] and [list(seg) for seg in got] == [["text"], ["audio_codes"]]
        assert IL.pretty(cut, partial=True) == "hi[audio 2 codes]"
    assert IL.decode(ids[3:-1], partial=True)[0]["audio_codes"].tolist() == [1, 2]
    with pytest.raises(StreamError, match="position 0: expected <bos>, got text:104"):
        IL.decode(ids[1:])


@pytest.mark.parametrize("kw", [{}, {"repair": True}, {"partial": True}, {"repair": True, "partial": True}])
def test_an_empty_stream_is_an_empty_document(kw: dict[str, bool]) -> None:
    got = IL.decode([], **kw)
    assert got == [] and got.repairs == []
    assert IL.pretty([], **kw) == ""
    assert IL.decode(torch.zeros(0, dtype=torch.long), **kw) == []


# --------------------------------------------------------------------------- vocabulary dicts


@pytest.mark.parametrize(("field", "value", "match"), [
    ("ranges", None, "ranges must map media names to sizes"),
    ("ranges", {"image": "16"}, "range 'image' must be a whole number"),
    ("ranges", {"image": 16.0}, "range 'image' must be a whole number"),
    ("text_size", "256", "text_size must be a whole number"),
    ("text_size", 256.5, "text_size must be a whole number"),
    ("n_special", None, "n_special must be a whole number"),
    ("text_size", 2**24 + 1, "text_size must lie in"),
    ("size", "304", "size must be a whole number"),
    ("format_version", "one", "format_version must be a whole number"),
    ("specials", None, "specials must be a list of strings"),
    ("sources", ["text"], "sources must map names to fingerprint strings"),
])
def test_a_malformed_vocabulary_dict_is_a_vocabulary_error(field: str, value: Any, match: str) -> None:
    data = Vocabulary(256, ranges={"image": 16}, sources={"text": "t"}).to_dict()
    assert Vocabulary.from_dict(data).size == 304
    data[field] = value
    with pytest.raises(VocabularyError, match=match):
        Vocabulary.from_dict(data)


# --------------------------------------------------------------------------- positions


def test_encode_gives_the_positions_worked_out_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    s = IL.encode(["hi", {"image_codes": [[1, 2, 3], [4, 5, 6]]}, {"audio_codes": [7, 8]}, "!"])
    assert s.ids.tolist() == [IL.BOS, 104, 105, IL.BOI, I0 + 1, I0 + 2, I0 + 3, IL.EOL, I0 + 4, I0 + 5, I0 + 6,
                              IL.EOL, IL.EOI, IL.BOA, A0 + 7, A0 + 8, IL.EOA, 33, IL.EOS]
    flat = [[p, p, p] for p in range(4)]  # <bos> h i <boi>
    image = [[4, 4 + r, 4 + c] for r in range(2) for c in range(4)]  # starts at 4; <eol> at column 3
    after = [[p, p, p] for p in range(8, 15)]  # 4 + max(2 rows, 4 columns): <eoi> <boa> 7 8 <eoa> ! <eos>
    assert s.pos_thw.tolist() == flat + image + after
    calls = []
    monkeypatch.setattr(interleave, "positions_thw", lambda v, ids: calls.append(len(ids)) or torch.zeros(len(ids), 3, dtype=torch.long))
    IL.encode(["hi", {"image_codes": [[1]]}])
    assert calls == [8]  # one implementation: encode asks positions_thw for a stream with a grid


def test_a_stream_without_a_grid_gets_the_positions_positions_thw_gives_without_asking_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc = ["hi ", {"audio_codes": [7, 8, 9]}, " yo", {"audio_codes": [1]}, "!"]
    s = IL.encode(doc)
    assert s.pos_thw.tolist() == positions_thw(V, s.ids).tolist() == [[p, p, p] for p in range(len(s))]
    bare = Interleaver(V, bos=False, eos=False)
    assert bare.encode(["hi"]).pos_thw.tolist() == positions_thw(V, bare.encode(["hi"]).ids).tolist()
    assert bare.encode([]).pos_thw.shape == (0, 3)
    calls = []
    monkeypatch.setattr(interleave, "positions_thw", lambda v, ids: calls.append(len(ids)) or torch.zeros(len(ids), 3, dtype=torch.long))
    assert IL.encode(doc).pos_thw.tolist() == s.pos_thw.tolist()
    assert calls == []  # no <boi> or <bov>: one line, nothing to work out


def test_a_malformed_vocabulary_dict_names_the_file_it_came_from() -> None:
    data = {**Vocabulary.for_tokenizers(text=ByteTokenizer()).to_dict(), "ranges": None}
    with pytest.raises(VocabularyError, match=r"^run/ckpt-0000004/config\.json: vocabulary ranges must map"):
        Vocabulary.from_dict(data, where="run/ckpt-0000004/config.json")
    with pytest.raises(VocabularyError, match=r"^vocabulary ranges must map"):
        Vocabulary.from_dict(data)
