"""Text tokenizers as a demanding user meets them: a wrapped or hand-edited BPE whose extra settings (added tokens,
padding, truncation, a normalizer, dropout, ids without a token) would turn text into other ids, and a
``mmtok train-tokenizer text`` run on a binary file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer, normalizers

import mmtok
from mmtok.core.errors import CheckpointError
from mmtok.stream.text import BPETokenizer, ByteTokenizer, train_bpe
from mmtok.stream.vocab import Modality

CORPUS = ["the quick brown fox jumps over the lazy dog", "héllo wörld 你好 🙂 <b>bold</b> tabs\tand\nlines"] * 30


@pytest.fixture(scope="module")
def made() -> str:
    """A trained BPE's tokenizer.json."""
    return train_bpe(CORPUS, vocab_size=300)._tok.to_str()


def _fresh(made: str) -> Tokenizer:
    return Tokenizer.from_str(made)


def test_text_that_spells_an_added_token_stays_text(made: str) -> None:
    plain = BPETokenizer(_fresh(made))
    hf = _fresh(made)
    hf.add_special_tokens(["<|endoftext|>", "<boi>"])  # as a GPT-2 style tokenizer.json carries them
    tok = BPETokenizer(hf)
    text = "a<|endoftext|>b <boi> c"
    assert tok.encode(text) == plain.encode(text)  # the literal spelling is text, never the added token's id
    assert tok.encode_batch([text, "<boi>"]) == plain.encode_batch([text, "<boi>"])
    eot = hf.token_to_id("<|endoftext|>")
    assert eot == 300 and tok.vocab_size == 302
    assert tok.decode([eot]) == "<|endoftext|>"  # its id, when a model gives it, reads as its text
    il = mmtok.Interleaver(None, text=tok)
    stream = il.encode([text])
    assert set(stream.modality[1:-1].tolist()) == {Modality.TEXT}
    assert il.decode(stream)[0]["text"] == text and mmtok.pretty(stream) == text


def test_an_added_token_of_any_characters_decodes_to_its_text(made: str) -> None:
    hf = _fresh(made)
    hf.add_special_tokens(["<é x>"])  # a space and a non-ASCII letter: no byte-level characters
    tok = BPETokenizer(hf)
    assert tok.decode([hf.token_to_id("<é x>")]) == "<é x>"
    assert tok.decode(tok.encode("<é x>")) == "<é x>"


def test_padding_and_truncation_of_a_wrapped_tokenizer_neither_add_nor_cut_ids(made: str) -> None:
    plain = BPETokenizer(_fresh(made))
    hf = _fresh(made)
    hf.enable_padding(pad_id=3)
    hf.enable_truncation(max_length=40)
    tok = BPETokenizer(hf)
    texts = ["a", "the quick brown fox " * 20]
    assert tok.encode_batch(texts) == plain.encode_batch(texts)
    assert [tok.decode(ids) for ids in tok.encode_batch(texts)] == texts
    assert tok.decode(tok.encode(texts[1])) == texts[1]


def test_a_normalizer_is_refused_even_one_no_probe_shows(made: str) -> None:
    hf = _fresh(made)
    hf.normalizer = normalizers.Replace("q", "k")  # "quick" would come back "kuick"
    with pytest.raises(CheckpointError, match=r"normalizer \(Replace\).*remove it"):
        BPETokenizer(hf)
    hf.normalizer = normalizers.Lowercase()
    with pytest.raises(CheckpointError, match=r"normalizer \(Lowercase\)"):
        BPETokenizer(hf)


def _edited(tmp_path: Path, made: str, edit_tokenizer: object = None, edit_config: object = None) -> Path:
    """A saved BPE whose tokenizer.json and config.json were edited by hand (the recorded fingerprint dropped)."""
    folder = BPETokenizer(_fresh(made)).save(tmp_path / "bpe")
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if callable(edit_tokenizer):
        edit_tokenizer(spec)
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    meta = json.loads((folder / "config.json").read_text())
    del meta["config"]["fingerprint"]
    if callable(edit_config):
        edit_config(meta["config"])
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


def test_dropout_in_a_tokenizer_json_is_refused(tmp_path: Path, made: str) -> None:
    folder = _edited(tmp_path, made, lambda spec: spec["model"].update(dropout=0.3))
    with pytest.raises(CheckpointError, match=r"bpe: this BPE has dropout 0\.3.*different ids each time"):
        mmtok.load(folder)


def test_a_lowercasing_tokenizer_json_is_refused_on_load(tmp_path: Path, made: str) -> None:
    folder = _edited(tmp_path, made, lambda spec: spec.update(normalizer={"type": "Lowercase"}))
    with pytest.raises(CheckpointError, match=r"normalizer \(Lowercase\)"):
        mmtok.load(folder)


def test_ids_without_a_token_are_refused(tmp_path: Path, made: str) -> None:
    def gap(spec: dict) -> None:
        vocab = spec["model"]["vocab"]
        vocab[next(t for t, i in vocab.items() if i == 299)] = 400

    folder = _edited(tmp_path, made, gap, lambda cfg: cfg.pop("vocab_size"))
    with pytest.raises(CheckpointError, match=r"no token for 101 of its ids \[0, 401\) \(the first: 299\)"):
        mmtok.load(folder)


def test_a_config_whose_vocab_size_disagrees_with_the_tokenizer_is_refused(tmp_path: Path, made: str) -> None:
    folder = _edited(tmp_path, made, None, lambda cfg: cfg.update(vocab_size=10))
    with pytest.raises(CheckpointError, match=r"config\.json says vocab_size 10 but tokenizer\.json has 300 ids"):
        mmtok.load(folder)


def test_an_edited_tokenizer_json_is_refused_saying_what_to_do(tmp_path: Path, made: str) -> None:
    folder = BPETokenizer(_fresh(made)).save(tmp_path / "bpe")
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")  # same tokens, new bytes
    with pytest.raises(CheckpointError, match=r"does not match config\.json .*put back the tokenizer\.json saved"):
        mmtok.load(folder)
    moved = folder.rename(tmp_path / "moved")
    (moved / "tokenizer.json").write_text(made, encoding="utf-8")  # the saved one put back, in a moved folder
    assert mmtok.load(moved).fingerprint == BPETokenizer(_fresh(made)).fingerprint


def test_a_binary_file_is_refused_as_no_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.stream.text_command import main

    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café au lait\n".encode("latin1") * 50)
    for path, said in ((junk, r"junk\.bin is not text \(byte 0x80 at offset 128, and 208 of its first 2048 bytes are "
                               r"control bytes .*leave binary files out"),
                       (latin, r"latin\.txt is not UTF-8 text \(byte 0xe9 at offset 3\); convert it first")):
        with pytest.raises(SystemExit):
            main([str(path), "--vocab-size", "300", "--out", str(tmp_path / "out")])
        assert re.search(said, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_lone_surrogate_comes_back_beside_invalid_bytes_under_any_error_handler(made: str) -> None:
    for tok in (ByteTokenizer(), BPETokenizer(_fresh(made))):
        stray = tok.encode("\udcff")[:1]  # the first of its three bytes: no UTF-8 alone
        ids = tok.encode("a\ud800b") + stray
        assert tok.decode(ids) == "a\ud800b\ufffd"
        assert tok.decode(ids, errors="ignore") == "a\ud800b"
        assert tok.decode(ids, errors="backslashreplace") == "a\ud800b\\xed"
        with pytest.raises(UnicodeDecodeError):
            tok.decode(ids, errors="strict")
        with pytest.raises(ValueError, match=r"errors must name a codecs error handler .* got 'bogus'"):
            tok.decode([65], errors="bogus")


class _Spy:
    """A tokenizers.Tokenizer stand-in that records how many characters each call is given."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner, self.sizes = inner, []

    def encode(self, text: str, **kw: object) -> object:
        self.sizes.append(len(text))
        return self.inner.encode(text, **kw)

    def encode_batch(self, texts: list[str], **kw: object) -> object:
        self.sizes += [len(t) for t in texts]
        return self.inner.encode_batch(texts, **kw)


def test_a_long_text_is_tokenized_in_pieces_that_give_the_ids_of_the_whole(
        made: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from mmtok.stream import text as text_mod

    rng = random.Random(0)
    # ASCII and Unicode spaces (some that only Python or only Rust calls space), contractions, CJK, emoji, digits
    alphabet = [*"ab cD\t\n\r'sé你🙂1 2.,!-", "\u3000", "\u00a0", "\x1c", "\x85", "\u2028", "\u200b", "'ll", " '",
                "\n\n  ", "   ", "\r\n"]
    tok = BPETokenizer(_fresh(made))
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 600))) for _ in range(150)]
    texts.append("x" * 500 + " y")  # a run no cut may enter
    whole = [tok.encode(t) for t in texts]
    spy = _Spy(tok._enc)
    monkeypatch.setattr(tok, "_enc", spy)
    monkeypatch.setattr(text_mod, "ENCODE_PIECE_CHARS", 40)
    assert [tok.encode(t) for t in texts] == whole
    assert tok.encode_batch(texts) == whole
    # pieces of bounded size, but for the run without a place to cut
    assert max(spy.sizes) == 500 and max(n for n in spy.sizes if n != 500) <= 80
    assert [tok.decode(ids) for ids in whole] == texts


def test_train_bpe_refuses_one_string_and_bytes_instead_of_learning_characters() -> None:
    with pytest.raises(TypeError, match=r"train_bpe takes an iterable of texts, got one str .*pass \[text\]"):
        train_bpe("low lower lowest " * 50, vocab_size=260)
    with pytest.raises(TypeError, match=r"take str, got bytes \(decode bytes first\)"):
        train_bpe(["low", b"lower"], vocab_size=260)


def test_encode_batch_refuses_one_string_and_names_an_item_that_is_no_text(made: str) -> None:
    for tok in (ByteTokenizer(), BPETokenizer(_fresh(made))):
        with pytest.raises(TypeError, match=r"encode_batch takes an iterable of texts, got one str"):
            tok.encode_batch("hello")
        with pytest.raises(TypeError, match=r"take str, got bytes"):
            tok.encode_batch(["a", b"b"])
        assert tok.encode_batch(("a", "b")) == [tok.encode("a"), tok.encode("b")]
