"""Text <-> ids: UTF-8 bytes (no files needed) or a byte-level BPE.

Both tokenizers round trip every Python ``str`` exactly, lone surrogates
included: text becomes bytes with UTF-8 and the ``surrogatepass`` error
handler (a lone surrogate such as ``"\\ud800"`` becomes its three-byte
encoding ``ED A0 80``), and ids go back to text the same way. Ids that do not
form valid UTF-8 (which only generated ids do) raise ``UnicodeDecodeError`` with
``errors="strict"`` or become U+FFFD with ``errors="replace"`` (the default; any
``codecs`` error handler may be named, such as ``"ignore"``); lone surrogates
among them still come back as themselves.

A :class:`BPETokenizer` tokenizes text as text: a string that spells one of its
added tokens (``"<|endoftext|>"`` in a wrapped GPT-2 tokenizer) gets the ids of
its characters, never that token's id, and special tokens such as ``<boi>`` are
ids of the :class:`~mmtok.stream.vocab.Vocabulary`, which no text encodes to.

>>> tok = ByteTokenizer()
>>> tok.encode("hé")
[104, 195, 169]
>>> tok.decode([104, 195, 169])
'hé'
"""

from __future__ import annotations

import abc
import codecs
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.checkpoint import MAX_CONFIG_INT, read_config, save_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.stream.vocab import RESERVED_SPECIAL

__all__ = ["BPETokenizer", "ByteTokenizer", "TextTokenizer", "load_text_tokenizer", "train_bpe"]

KIND = "text"  # checkpoint kind of a BPE folder
TOKENIZER_FILE = "tokenizer.json"  # the Hugging Face tokenizers serialization inside it
# the most text ids: with the special block they fill the largest vocabulary a checkpoint config holds (2**24)
MAX_VOCAB_SIZE = MAX_CONFIG_INT - RESERVED_SPECIAL
_SURROGATE = re.compile("[\ud800-\udfff]")
# text a BPE must give back unchanged (a pre-tokenizer that drops spaces or adds a prefix space would change it)
ROUND_TRIP_PROBE = "Cafe\u0301  \r\n\x00\U0001f44d x"
# the most characters of one text the BPE trainer is given at once: its time grows with the square of a word's
# length, so a long run without spaces (CJK, base64, minified JSON) is learned from in pieces of this many
TRAIN_PIECE_CHARS = 2048
# where a piece may end: before an ASCII whitespace that a non-space follows, where the byte-level
# pre-tokenizer starts a word anyway (a run of spaces keeps its last one for the word after it)
_CUT = re.compile(r"[ \t\n\r\f\v](?=\S)")
# a longer text is tokenized in pieces of about this many characters, each cut where a word starts (the same ids)
ENCODE_PIECE_CHARS = 1 << 14


def _text(text: str) -> str:
    """``text``, or a TypeError naming what it is when it is no ``str``."""
    if not isinstance(text, str):
        hint = " (decode bytes first)" if isinstance(text, bytes) else ""
        raise TypeError(f"text tokenizers take str, got {type(text).__name__}{hint}")
    return text


def _texts(texts: Any, what: str = "encode_batch") -> list[str]:
    """``texts`` as a list of ``str``; a TypeError for one ``str`` or ``bytes`` (whose characters would be taken
    for texts) or an item that is no ``str``."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} takes an iterable of texts, got one {type(texts).__name__} (it would be taken one "
                        "character at a time): pass [text], or a list of lines")
    return [_text(t) for t in texts]


def _to_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"text tokenizers encode str, got {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


def _from_bytes(data: bytes, errors: str) -> str:
    """``data`` as text: a lone surrogate's three bytes give it back wherever they are, other bytes that are no UTF-8
    go to the ``errors`` handler (any that :func:`codecs.lookup_error` knows: ``"strict"`` raises)."""
    return data.decode("utf-8", _decode_handler(errors))


def _decode_handler(errors: str) -> str:
    """The name of a codecs error handler that passes lone surrogates and leaves any other invalid UTF-8 to
    ``errors`` (registered on first use); ValueError for a name that is no error handler.

    >>> b"a\\xed\\xa0\\x80\\xffb".decode("utf-8", _decode_handler("ignore"))
    'a\\ud800b'
    """
    if errors == "strict":
        return "surrogatepass"
    name = f"mmtok.surrogatepass.{errors}"
    try:
        codecs.lookup_error(name)
    except LookupError:
        try:
            fallback = codecs.lookup_error(errors)
        except (LookupError, TypeError):
            raise ValueError(f"errors must name a codecs error handler (strict, replace, ignore, backslashreplace), "
                             f"got {errors!r}") from None
        passing = codecs.lookup_error("surrogatepass")

        def handler(e: UnicodeError) -> tuple[str | bytes, int]:
            try:
                return passing(e)
            except UnicodeError:
                return fallback(e)

        codecs.register_error(name, handler)
    return name


def _file_fingerprint(data: bytes) -> str:
    """16 hex digits of sha256 over a serialized tokenizer, as :meth:`BPETokenizer.save` writes it."""
    return hashlib.sha256(data).hexdigest()[:16]


def _as_ids(ids: Any) -> np.ndarray:
    """Any sequence, array or tensor of ids as a flat int64 array (floats are refused)."""
    import torch  # the tokenizers' tables need none

    a = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"text ids must be integers, got dtype {a.dtype}")
    return a.astype(np.int64).reshape(-1)


class TextTokenizer(abc.ABC):
    """The base of mmtok's text tokenizers: ``str`` <-> ids in ``[0, vocab_size)``.

    A subclass says how text becomes ids (:meth:`encode`) and which bytes each id
    stands for (:meth:`ids_to_bytes`); decoding, its range check and its
    ``errors`` policy are shared. ``fingerprint`` names the vocabulary (a
    :class:`~mmtok.stream.vocab.Vocabulary` records it).
    """

    vocab_size: int
    fingerprint: str

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""

    @abc.abstractmethod
    def ids_to_bytes(self, ids: np.ndarray) -> bytes:
        """The bytes that ``ids`` (int64, already range-checked) stand for, back to back."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of many texts (a list, not one ``str``)."""
        return [self.encode(t) for t in _texts(texts)]

    def decode(self, ids: Any, *, errors: str = "replace") -> str:
        """Text from ids (the exact inverse of :meth:`encode`); ``errors="strict"`` raises on invalid UTF-8, another
        ``codecs`` error handler (``"replace"``, ``"ignore"``) takes the bytes that are no UTF-8."""
        a = _as_ids(ids)
        bad = (a < 0) | (a >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"id {int(a[bad][0])} is outside this {type(self).__name__}'s vocabulary [0, {self.vocab_size})")
        return _from_bytes(self.ids_to_bytes(a), errors)


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes as ids ``[0, 256)``; needs no files and never fails to encode."""

    vocab_size = 256
    fingerprint = "byte-utf8-surrogatepass-v1"

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text`` (lone surrogates via ``surrogatepass``)."""
        return list(_to_bytes(text))

    def ids_to_bytes(self, ids: np.ndarray) -> bytes:
        return ids.astype(np.uint8).tobytes()

    def __repr__(self) -> str:
        return "ByteTokenizer()"


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (what byte-level BPE tokens are made of)."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()  # the 256 stand-ins, unordered
    # the GPT-2 table: printable latin-1 bytes map to themselves, the rest to 256 + k in byte order
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    assert set(table.values()) == set(alphabet), "byte-level alphabet differs from GPT-2's table"
    return table


def _text_only(tokenizer: Any, spec: dict[str, Any]) -> Any:
    """``tokenizer`` as text is tokenized with: without its added tokens (text that spells one, such as
    ``"<|endoftext|>"``, is tokenized as the text it is, never as that token's id), post-processor, truncation and
    padding (which add or cut ids); ids keep their meaning. A normalizer (it changes text: lower case, Unicode
    forms, stripped spaces) and BPE dropout (random ids) are refused (:class:`CheckpointError`): no text
    tokenizer of mmtok's may change text or vary its ids."""
    from tokenizers import Tokenizer

    if spec.get("normalizer") is not None:
        raise CheckpointError(
            f"this BPE does not give text back as it was: its normalizer ({spec['normalizer'].get('type', '?')}) "
            f"changes text before it is tokenized; remove it (\"normalizer\": null in {TOKENIZER_FILE}) or train "
            "one with train_bpe")
    if (spec.get("model") or {}).get("dropout"):
        raise CheckpointError(
            f"this BPE has dropout {spec['model']['dropout']}, which gives the same text different ids each time: "
            f"set \"dropout\": null in {TOKENIZER_FILE}'s model, or train one with train_bpe")
    if not any(spec.get(key) for key in ("added_tokens", "post_processor", "truncation", "padding")):
        return tokenizer
    plain = {**spec, "added_tokens": [], "post_processor": None, "truncation": None, "padding": None}
    return Tokenizer.from_str(json.dumps(plain))


def _id_bytes(tokenizer: Any, spec: dict[str, Any], u2b: dict[str, int]) -> list[bytes]:
    """The bytes each id of ``tokenizer`` stands for: a vocabulary token's from its byte-level characters, an added
    token's (one not in the vocabulary) its text's UTF-8; :class:`CheckpointError` for a token of other
    characters or an id that no token has (its text would be lost)."""
    table: dict[int, bytes] = {}
    for token, i in tokenizer.get_vocab(with_added_tokens=False).items():
        try:
            table[i] = bytes(u2b[c] for c in token)
        except KeyError:
            raise CheckpointError(f"token {token!r} (id {i}) is not made of byte-level characters: this is no "
                                  "byte-level BPE; train one with train_bpe") from None
    for added in spec.get("added_tokens") or []:
        table.setdefault(int(added["id"]), str(added["content"]).encode("utf-8", "surrogatepass"))
    size = max(table) + 1 if table else 0
    if len(table) != size:
        missing = sorted(set(range(size)) - set(table))
        raise CheckpointError(f"this BPE has no token for {len(missing)} of its ids [0, {size}) (the first: "
                              f"{missing[0]}), whose text would be lost: give every id a token, or train one "
                              "with train_bpe")
    return [table[i] for i in range(size)]


class BPETokenizer(TextTokenizer):
    """Byte-level BPE run by Hugging Face ``tokenizers``; ids ``[0, vocab_size)``.

    Train one with :func:`train_bpe` (or ``mmtok train-tokenizer text FILES
    --vocab-size N --out DIR``), save it with :meth:`save`, read it back with
    :meth:`load` or ``mmtok.load(DIR)``.
    """

    KIND = KIND

    def __init__(self, tokenizer: Any, *, provenance: dict[str, Any] | None = None) -> None:
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"BPETokenizer wraps a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        self._tok = tokenizer  # as given: saved and fingerprinted as it is
        spec = json.loads(tokenizer.to_str())
        self._enc = _text_only(tokenizer, spec)  # what text is tokenized with
        pre = spec.get("pre_tokenizer") or {}
        # whether a long text may be tokenized in pieces cut where a word starts (GPT-2's split): the same ids
        self._cuts = pre.get("type") == "ByteLevel" and bool(pre.get("use_regex", True))
        self.provenance = dict(provenance or {})
        b2u = _byte_to_unicode()
        self._byte_ids = [self._enc.token_to_id(b2u[b]) for b in range(256)]
        if None in self._byte_ids:
            raise CheckpointError("BPE vocabulary lacks some of the 256 byte tokens; retrain it with train_bpe")
        self._id_bytes = _id_bytes(tokenizer, spec, {u: b for b, u in b2u.items()})
        self.vocab_size = len(self._id_bytes)
        self._lens = np.array([len(b) for b in self._id_bytes], dtype=np.int64)  # bytes per id
        self._starts = np.concatenate([[0], np.cumsum(self._lens)[:-1]])  # offset of each id in _table
        self._table = np.frombuffer(b"".join(self._id_bytes), dtype=np.uint8)
        back = _from_bytes(self.ids_to_bytes(np.asarray(self._encode_valid(ROUND_TRIP_PROBE), np.int64)), "replace")
        if back != ROUND_TRIP_PROBE:
            raise CheckpointError(
                f"this BPE does not give text back as it was ({ROUND_TRIP_PROBE!a} comes back as {back!a}): "
                "a pre-tokenizer or a prefix space changes text; train one with train_bpe")

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the tokenizer's serialization when it was made; one read by :meth:`load` keeps the value its
        checkpoint recorded, whatever version of ``tokenizers`` reads it."""
        return _file_fingerprint(self._tok.to_str().encode())

    def _encode_valid(self, text: str) -> list[int]:
        if len(text) <= ENCODE_PIECE_CHARS or not self._cuts:
            return self._enc.encode(text, add_special_tokens=False).ids if text else []
        # piece by piece: the same ids, in a fraction of the memory tokenizers takes for one long text
        pieces = _word_pieces(text, ENCODE_PIECE_CHARS)
        return [i for piece in pieces for i in self._enc.encode(piece, add_special_tokens=False).ids]

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; a lone surrogate becomes the ids of its three bytes."""
        _to_bytes(text)  # type check
        if not _SURROGATE.search(text):
            return self._encode_valid(text)
        ids: list[int] = []
        start = 0
        for m in _SURROGATE.finditer(text):
            ids += self._encode_valid(text[start : m.start()])
            ids += [self._byte_ids[b] for b in _to_bytes(m.group())]
            start = m.end()
        return ids + self._encode_valid(text[start:])

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of many texts (valid ones tokenized in parallel by ``tokenizers``)."""
        texts = _texts(texts)
        if not any(_SURROGATE.search(t) or len(t) > ENCODE_PIECE_CHARS for t in texts):
            return [e.ids for e in self._enc.encode_batch(texts, add_special_tokens=False)]
        return [self.encode(t) for t in texts]

    def ids_to_bytes(self, ids: np.ndarray) -> bytes:
        # gather every token's bytes from one table in a single indexing step
        lens = self._lens[ids]
        ends = np.cumsum(lens)
        index = np.arange(int(ends[-1]) if ids.size else 0) + np.repeat(self._starts[ids] - (ends - lens), lens)
        return self._table[index].tobytes()

    def token_bytes(self, i: int) -> bytes:
        """The bytes id ``i`` stands for."""
        return self._id_bytes[i]

    # ------------------------------------------------------------------ files

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write a checkpoint folder of kind ``"text"`` (``config.json`` + ``tokenizer.json``)."""
        return save_checkpoint(
            folder,
            kind=KIND,
            config={"type": "bpe", "vocab_size": self.vocab_size, "fingerprint": self.fingerprint},
            tensors={},
            provenance=self.provenance,
            extra_files={TOKENIZER_FILE: self._tok.to_str()},
        )

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> BPETokenizer:
        """Read a folder written by :meth:`save`, checking its kind and format version."""
        from tokenizers import Tokenizer

        meta = read_config(folder, kind=KIND)
        path = Path(meta["_path"])
        if meta["config"].get("type") != "bpe":
            raise CheckpointError(f"text checkpoint {path} is of type {meta['config'].get('type')!r}, expected 'bpe'")
        if not (path / TOKENIZER_FILE).is_file():
            raise CheckpointError(f"text checkpoint {path} has no {TOKENIZER_FILE}")
        try:
            saved = (path / TOKENIZER_FILE).read_bytes()
        except OSError as e:
            raise CheckpointError(f"text checkpoint {path}: cannot read {TOKENIZER_FILE} ({e.strerror or e})") from e
        have, want = _file_fingerprint(saved), meta["config"].get("fingerprint")
        if want is not None and want != have:
            raise CheckpointError(
                f"text checkpoint {path}: {TOKENIZER_FILE} does not match config.json (its fingerprint is {have}, "
                f"config.json records {want}): it was edited or replaced after it was saved; put back the "
                f"{TOKENIZER_FILE} saved with it, or train a new one (mmtok train-tokenizer text)")
        try:
            tok = cls(Tokenizer.from_str(saved.decode()), provenance=meta.get("provenance"))
        except CheckpointError as e:
            raise CheckpointError(f"text checkpoint {path}: {e}") from e
        except Exception as e:
            raise CheckpointError(f"text checkpoint {path}: {TOKENIZER_FILE} is unreadable ({e})") from e
        said = meta["config"].get("vocab_size")
        if said is not None and said != tok.vocab_size:
            raise CheckpointError(
                f"text checkpoint {path}: config.json says vocab_size {said} but {TOKENIZER_FILE} has "
                f"{tok.vocab_size} ids: the two files are of different tokenizers; put back the pair saved together, "
                "or train a new one (mmtok train-tokenizer text)")
        tok.fingerprint = have  # the file as saved names it, not how this version of tokenizers writes it again
        return tok

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _pieces(text: str, limit: int = TRAIN_PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters, back to back, as the BPE trainer learns from it.

    A piece ends before the last whitespace in its second half that a non-space follows (there the
    pre-tokenizer starts a word anyway, so the words learned from are those of the whole text), or, with no
    such whitespace near, after ``limit`` characters: a cut inside a word, on ``str``, so never inside a
    character. A text of at most ``limit`` characters is one piece, itself.

    >>> list(_pieces("ab cd ef gh", 6)), list(_pieces("w" * 7, 3))
    (['ab cd', ' ef gh'], ['www', 'www', 'w'])
    """
    start = 0
    while len(text) - start > limit:
        end = start + limit
        for m in _CUT.finditer(text, start + max(1, limit // 2), end + 1):
            end = m.start()  # the last one wins
        yield text[start:end]
        start = end
    yield text[start:]


def _word_pieces(text: str, limit: int = ENCODE_PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of about ``limit`` characters, back to back, each cut only where the byte-level
    pre-tokenizer starts a word anyway (:data:`_CUT`), so tokenizing the pieces gives the ids of the whole: the
    last such place in a piece's second half, else the first one after ``limit`` characters (a run without one is
    never cut).

    >>> list(_word_pieces("ab cd ef gh", 6)), list(_word_pieces("w" * 7 + " x", 3))
    (['ab cd', ' ef gh'], ['wwwwwww', ' x'])
    """
    start = 0
    while len(text) - start > limit:
        end = None
        for m in _CUT.finditer(text, start + max(1, limit // 2), start + limit + 1):
            end = m.start()  # the last one wins
        if end is None:
            after = _CUT.search(text, start + limit)
            if after is None:
                break
            end = after.start()
        yield text[start:end]
        start = end
    yield text[start:]


def train_bpe(
    texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, provenance: dict[str, Any] | None = None
) -> BPETokenizer:
    """Train a byte-level BPE with up to ``vocab_size`` ids (256 to :data:`MAX_VOCAB_SIZE`: every byte has one;
    a corpus with fewer pairs to merge gives fewer).

    A text longer than :data:`TRAIN_PIECE_CHARS` is learned from in pieces of at most that many characters,
    cut where a word starts anyway when one starts near (:func:`_pieces`), so the time grows linearly with a
    run without spaces (CJK, base64, minified JSON) instead of with its square; such a run is learned from as
    words of at most that length.

    >>> tok = train_bpe(["low lower lowest"] * 50, vocab_size=260)
    >>> tok.vocab_size, tok.decode(tok.encode("lowest"))
    (260, 'lowest')
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not 256 <= vocab_size <= MAX_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least 256 (one id per byte) and at most {MAX_VOCAB_SIZE:,}, "
                         f"got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    if isinstance(texts, (str, bytes)):
        _texts(texts, "train_bpe")
    # tokenizers takes Rust strings: lone surrogates cannot reach the trainer
    pieces = (piece for t in texts for piece in _pieces(_SURROGATE.sub("", _text(t))))
    tok.train_from_iterator(pieces, trainer=trainer)
    return BPETokenizer(tok, provenance=provenance)


def load_text_tokenizer(spec: str | os.PathLike[str] = "byte") -> ByteTokenizer | BPETokenizer:
    """``"byte"`` -> :class:`ByteTokenizer`; a folder -> the :class:`BPETokenizer` saved there."""
    if str(spec) == "byte":
        return ByteTokenizer()
    return BPETokenizer.load(spec)
