"""Text <-> ids: UTF-8 bytes (no files needed) or a byte-level BPE.

Both tokenizers round trip every Python ``str`` exactly, lone surrogates
included: text becomes bytes with UTF-8 and the ``surrogatepass`` error
handler (a lone surrogate such as ``"\\ud800"`` becomes its three-byte
encoding ``ED A0 80``), and ids go back to text the same way. Ids that do not
form valid UTF-8 (which only generated ids do) raise ``UnicodeDecodeError`` with
``errors="strict"`` or become U+FFFD with ``errors="replace"`` (the default).

>>> tok = ByteTokenizer()
>>> tok.encode("hé")
[104, 195, 169]
>>> tok.decode([104, 195, 169])
'hé'
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.core.checkpoint import MAX_CONFIG_INT, read_config, save_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.stream.vocab import RESERVED_SPECIAL

__all__ = ["WIDE_SNIFF_BYTES", "BPETokenizer", "ByteTokenizer", "TextTokenizer", "load_text_tokenizer", "train_bpe",
           "unmarked_wide_encoding", "wide_encoding", "wide_text"]

KIND = "text"  # checkpoint kind of a BPE folder
TOKENIZER_FILE = "tokenizer.json"  # the Hugging Face tokenizers serialization inside it
# the most text ids: with the special block they fill the largest vocabulary a checkpoint config holds (2**24)
MAX_VOCAB_SIZE = MAX_CONFIG_INT - RESERVED_SPECIAL
_SURROGATE = re.compile("[\ud800-\udfff]")
# text a BPE must give back unchanged (a normalizer or a prefix space would change it)
ROUND_TRIP_PROBE = "cafe\u0301  \r\n\x00\U0001f44d x"
# the most characters of one text the BPE trainer is given at once: its time grows with the square of a word's
# length, so a long run without spaces (CJK, base64, minified JSON) is learned from in pieces of this many
TRAIN_PIECE_CHARS = 2048
# where a piece may end: before an ASCII whitespace that a non-space follows, where the byte-level
# pre-tokenizer starts a word anyway (a run of spaces keeps its last one for the word after it)
_CUT = re.compile(r"[ \t\n\r\f\v](?=\S)")
# byte order marks of the wide encodings a text file is saved in by mistake (UTF-32's little-endian one first:
# it starts with UTF-16's)
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
             (b"\xfe\xff", "UTF-16"))
WIDE_SNIFF_BYTES = 4096  # bytes of a file's start looked at for wide text saved without a byte order mark
WIDE_MIN_ASCII = 8  # ASCII characters (one byte beside NULs) that must show before bytes are called wide text


def _to_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"text tokenizers encode str, got {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


def _from_bytes(data: bytes, errors: str) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        if errors == "strict":
            raise
        return data.decode("utf-8", "replace")


def _file_fingerprint(data: bytes) -> str:
    """16 hex digits of sha256 over a serialized tokenizer, as :meth:`BPETokenizer.save` writes it."""
    return hashlib.sha256(data).hexdigest()[:16]


def _as_ids(ids: Any) -> np.ndarray:
    """Any sequence, array or tensor of ids as a flat int64 array (floats are refused)."""
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
        """:meth:`encode` of many texts."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Any, *, errors: str = "replace") -> str:
        """Text from ids (the exact inverse of :meth:`encode`); ``errors="strict"`` raises on invalid UTF-8."""
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
        self._tok = tokenizer
        self.provenance = dict(provenance or {})
        b2u = _byte_to_unicode()
        self._byte_ids = [tokenizer.token_to_id(b2u[b]) for b in range(256)]
        if None in self._byte_ids:
            raise CheckpointError("BPE vocabulary lacks some of the 256 byte tokens; retrain it with train_bpe")
        u2b = {u: b for b, u in b2u.items()}
        vocab = tokenizer.get_vocab()
        self.vocab_size = max(vocab.values()) + 1
        self._id_bytes: list[bytes] = [b""] * self.vocab_size
        for token, i in vocab.items():
            self._id_bytes[i] = bytes(u2b[c] for c in token)
        self._lens = np.array([len(b) for b in self._id_bytes], dtype=np.int64)  # bytes per id
        self._starts = np.concatenate([[0], np.cumsum(self._lens)[:-1]])  # offset of each id in _table
        self._table = np.frombuffer(b"".join(self._id_bytes), dtype=np.uint8)
        back = _from_bytes(self.ids_to_bytes(np.asarray(self._encode_valid(ROUND_TRIP_PROBE), np.int64)), "replace")
        if back != ROUND_TRIP_PROBE:
            raise CheckpointError(
                f"this BPE does not give text back as it was ({ROUND_TRIP_PROBE!a} comes back as {back!a}): "
                "a normalizer or a prefix space changes text; train one with train_bpe")

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the tokenizer's serialization when it was made; one read by :meth:`load` keeps the value its
        checkpoint recorded, whatever version of ``tokenizers`` reads it."""
        return _file_fingerprint(self._tok.to_str().encode())

    def _encode_valid(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids if text else []

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
        if not any(_SURROGATE.search(t) for t in texts):
            return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]
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
            raise CheckpointError(f"text checkpoint {path}: {TOKENIZER_FILE} does not match config.json")
        try:
            tok = cls(Tokenizer.from_str(saved.decode()), provenance=meta.get("provenance"))
        except CheckpointError as e:
            raise CheckpointError(f"text checkpoint {path}: {e}") from e
        except Exception as e:
            raise CheckpointError(f"text checkpoint {path}: {TOKENIZER_FILE} is unreadable ({e})") from e
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
    # tokenizers takes Rust strings: lone surrogates cannot reach the trainer
    pieces = (piece for t in texts for piece in _pieces(_SURROGATE.sub("", t)))
    tok.train_from_iterator(pieces, trainer=trainer)
    return BPETokenizer(tok, provenance=provenance)


def load_text_tokenizer(spec: str | os.PathLike[str] = "byte") -> ByteTokenizer | BPETokenizer:
    """``"byte"`` -> :class:`ByteTokenizer`; a folder -> the :class:`BPETokenizer` saved there."""
    if str(spec) == "byte":
        return ByteTokenizer()
    return BPETokenizer.load(spec)


# --------------------------------------------------------------------------- files of text


def wide_encoding(head: bytes) -> str | None:
    """``"UTF-16"`` or ``"UTF-32"`` when a file's first bytes ``head`` (4 are enough) are that encoding's byte order
    mark, else None: text saved so (as some Windows editors and PowerShell do) is not UTF-8.

    >>> wide_encoding("{}".encode("utf-16")), wide_encoding(b'{"segments"'), wide_encoding(b"")
    ('UTF-16', None, None)
    """
    return next((name for bom, name in WIDE_BOMS if head.startswith(bom)), None)


def unmarked_wide_encoding(head: bytes) -> str | None:
    """``"UTF-16LE"``, ``"UTF-16BE"``, ``"UTF-32LE"`` or ``"UTF-32BE"`` when a file's first bytes ``head`` (up to
    :data:`WIDE_SNIFF_BYTES`) are clearly text saved so without a byte order mark, as Windows tools write it: an
    ASCII character there is one byte beside one (or three) NUL bytes, which UTF-8 text never holds. It takes at
    least :data:`WIDE_MIN_ASCII` such characters, a quarter of the code units or more, and NULs on one side only
    (a unit of NULs alone, or as many on the other side, is binary, not text); anything less clear is None,
    never a guess (text with no ASCII in it, such as Chinese in UTF-16, shows nothing).

    >>> unmarked_wide_encoding('{"segments": ["hé"]}'.encode("utf-16-le")), unmarked_wide_encoding(b'{"segments"')
    ('UTF-16LE', None)
    """
    head = head[:WIDE_SNIFF_BYTES]
    quads = [head[i : i + 4] for i in range(0, len(head) - 3, 4)]
    if len(quads) >= WIDE_MIN_ASCII:  # first: ASCII in UTF-32 shows NULs on both sides of its UTF-16 pairs
        for name, order in (("UTF-32LE", slice(None)), ("UTF-32BE", slice(None, None, -1))):
            units = [q[order] for q in quads]  # least significant byte first
            if all(u[3] == 0 and u[2] <= 0x10 for u in units) and _clearly(
                    sum(u[0] != 0 and u[1:] == b"\0\0\0" for u in units), 0, len(units)):
                return name
    pairs = [head[i : i + 2] for i in range(0, len(head) - 1, 2)]
    if b"\0\0" in pairs:
        return None
    low, high = sum(p[0] != 0 and p[1] == 0 for p in pairs), sum(p[0] == 0 and p[1] != 0 for p in pairs)
    return "UTF-16LE" if _clearly(low, high, len(pairs)) else "UTF-16BE" if _clearly(high, low, len(pairs)) else None


def _clearly(ascii_units: int, other_side: int, units: int) -> bool:
    """Whether ``ascii_units`` of ``units`` code units, against ``other_side`` with the NUL on the other side,
    clearly show a wide encoding (:func:`unmarked_wide_encoding`)."""
    return ascii_units >= max(WIDE_MIN_ASCII, units / 4) and other_side * 10 <= ascii_units


def wide_text(head: bytes) -> tuple[str, str] | None:
    """The encoding (as ``iconv -f`` names it) and what shows it, when a file's first bytes ``head`` (up to
    :data:`WIDE_SNIFF_BYTES`) are text in a wide encoding, which is not UTF-8: its byte order mark
    (:func:`wide_encoding`) or, without one, its NUL bytes (:func:`unmarked_wide_encoding`); else None.

    >>> wide_text("{}".encode("utf-16")), wide_text('{"segments": []}'.encode("utf-16-be"))[0]
    (('UTF-16', 'it starts with a UTF-16 byte order mark'), 'UTF-16BE')
    """
    marked = wide_encoding(head)
    if marked is not None:
        return marked, f"it starts with a {marked} byte order mark"
    bare = unmarked_wide_encoding(head)
    if bare is not None:
        return bare, "no byte order mark, but a NUL byte beside every ASCII character"
    return None
