"""``mmtok train-tokenizer text``: a byte-level BPE trained on text files and JSONL documents.

The files are checked before any training (UTF-8, not UTF-16/32, not Parquet), each JSONL line's texts are read
(a line that is not a document is skipped and counted), and the tokenizer is written as a checkpoint folder
that :func:`mmtok.stream.text.load_text_tokenizer` and ``mmtok tokenize --text`` read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmtok.core.checkpoint import write_refusal
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.stream.segments import segment_shape
from mmtok.stream.text import KIND, MAX_VOCAB_SIZE, train_bpe
from mmtok.stream.text_files import WIDE_SNIFF_BYTES, wide_text
from mmtok.stream.vocab import RESERVED_SPECIAL

__all__ = ["main"]

MAX_MIN_FREQUENCY = 2**64 - 1  # the BPE trainer counts pairs in 64 bits: a larger --min-frequency cannot be passed


def _head(path: str | os.PathLike[str]) -> bytes:
    """The first :data:`~mmtok.stream.text_files.WIDE_SNIFF_BYTES` bytes of the file at ``path`` (fewer for a
    shorter file)."""
    with open(path, "rb") as f:
        return f.read(WIDE_SNIFF_BYTES)


def _not_utf8(name: str) -> str | None:
    """Where the file stops being UTF-8 (``"byte 0xe9 at offset 12"``), or None when all of it is."""
    import codecs

    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(name, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                return f"byte 0x{block[e.start]:02x} at offset {offset + e.start}"
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"it ends inside a character, at offset {offset}"
    return None


@dataclass
class _Skips:
    """The documents of one JSONL file and those left out, as ``mmtok tokenize`` skips them."""

    docs: int = 0
    skipped: int = 0
    first: str = ""  # "LINE: reason" of the first one left out

    def said(self, name: str) -> str:
        return (f"skipped {self.skipped} of {self.docs} documents of {name}, as mmtok tokenize skips them "
                f"(first: {name}:{self.first})")


def _numbered_lines(name: str) -> Iterator[tuple[int, str]]:
    """A file's lines as written, numbered from 1: split on ``\\n`` only, as tokenize splits a corpus, so a
    ``\\r\\n`` stays in the text tokenize will see; each without a leading UTF-8 byte order mark (line 1's, or
    one where two files were joined), as tokenize reads it."""
    with open(name, "rb") as f:
        for number, raw in enumerate(f, start=1):
            yield number, raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _doc_texts(line: str) -> list[str] | str:
    """The text segments of one JSONL document, or why ``mmtok tokenize`` skips it for its shape.

    A segment is checked as tokenize checks its shape (:func:`~mmtok.stream.segments.segment_shape`); a media
    segment adds no text, and its file is not looked at.

    >>> _doc_texts('{"segments": ["a", {"image": "x.png"}, {"text": "b"}]}'), _doc_texts('{"segments": "ab"}')
    (['a', 'b'], 'expected an object with a "segments" list')
    """
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        return "invalid JSON"
    segs = doc.get("segments") if isinstance(doc, dict) else None
    if not isinstance(segs, list):
        return 'expected an object with a "segments" list'
    texts = []
    for k, seg in enumerate(segs):
        try:
            key, value, _ = segment_shape(seg, k)
        except ValueError as e:
            return str(e)
        if key == "text":
            texts.append(value)
    return texts


def _is_jsonl(name: str) -> bool:
    """Whether ``name`` is read as JSONL documents: its suffix is ``.jsonl`` in any case."""
    return Path(name).suffix.lower() == ".jsonl"


def _read_texts(files: Sequence[str], skips: dict[str, _Skips]) -> Iterator[str]:
    """The texts to train on: a ``.jsonl`` file's text segments (the suffix in any case, ``.JSONL`` too;
    documents tokenize skips are counted in ``skips``), any other file's lines."""
    for name in files:
        jsonl = skips.setdefault(name, _Skips()) if _is_jsonl(name) else None
        for number, line in _numbered_lines(name):
            if jsonl is None:
                yield line
                continue
            if not line.strip():  # not a document
                continue
            jsonl.docs += 1
            texts = _doc_texts(line)
            if isinstance(texts, str):
                jsonl.skipped += 1
                jsonl.first = jsonl.first or f"{number}: {texts}"
                continue
            yield from texts


def _out_refusal(out: str) -> str | None:
    """Why ``--out`` cannot take the trained tokenizer (None when it is new or empty, or holds an earlier text
    tokenizer checkpoint, which is replaced): nothing else there may be lost."""
    refused = write_refusal(out, kind=KIND)
    return f"--out {out} {refused}; give a new or empty folder (nothing was written)" if refused else None


def _not_a_file(name: str) -> str | None:
    """Why ``name`` is not a text file the command can read (None when it is a regular file): missing, a folder (whose
    files are to be named one by one), or a pipe or device, which cannot be read twice (the files are read once to
    check them, then to train)."""
    if os.path.isfile(name):
        return None
    if os.path.isdir(name):
        return (f"{name} is a folder; mmtok train-tokenizer text reads text files and JSONL documents (.jsonl): name "
                f"them, e.g. {os.path.join(name, '*.txt')}")
    if os.path.exists(name):
        return (f"{name} is not a regular file (a pipe or a device); the files are read more than once (checked, then "
                "trained on): write the text to a file first")
    return f"no such file: {name}"


def _refusal(args: argparse.Namespace) -> str | None:
    """Why the command line cannot work, its ``--out`` aside (:func:`_out_refusal`), checked before ``--out`` is
    held and before any pass over the corpus (None when it can)."""
    for name in args.files:
        if (refused := _not_a_file(name)) is not None:
            return refused
    if not 256 <= args.vocab_size <= MAX_VOCAB_SIZE:
        return (f"--vocab-size must be at least 256 (one id per byte) and at most {MAX_VOCAB_SIZE:,} (with the "
                f"{RESERVED_SPECIAL} special ids, 2**24: the largest vocabulary a checkpoint holds), "
                f"got {args.vocab_size}")
    if not 1 <= args.min_frequency <= MAX_MIN_FREQUENCY:
        return (f"--min-frequency must be at least 1 and at most {MAX_MIN_FREQUENCY} (the BPE trainer counts pairs in "
                f"64 bits) (got {args.min_frequency})")
    for name in args.files:
        if Path(name).suffix.lower() == ".parquet":  # in any case, as mmtok tokenize tells a Parquet corpus
            return (f"{name} is a Parquet file; mmtok train-tokenizer text reads text files and JSONL documents "
                    "(.jsonl): write the texts out to one of those first")
        wide = wide_text(_head(name))
        if wide is not None:
            return (f"{name} is {wide[0]} text ({wide[1]}), not UTF-8; convert it first, "
                    f"e.g. iconv -f {wide[0]} -t utf-8")
        where = _not_utf8(name)
        if where is not None:
            medium = _media_kind(name)
            if medium is not None:  # a picture, sound or video: no encoding makes it text
                return (f"{name} is {medium} file (by its extension), not text; mmtok train-tokenizer text reads "
                        "text files and JSONL documents (.jsonl), and media is tokenized by the image, audio "
                        "and video tokenizers")
            head = _head(name)
            controls = _control_bytes(head)
            if controls:  # no encoding makes it text: converting it would train on noise
                return (f"{name} is not text ({where}, and {controls} of its first {len(head)} bytes are "
                        "control bytes such as NUL, which text holds none of); mmtok train-tokenizer text reads "
                        "UTF-8 text files and JSONL documents (.jsonl): leave binary files out")
            return f"{name} is not UTF-8 text ({where}); convert it first, e.g. iconv -f latin1 -t utf-8"
    return None


def _parser() -> argparse.ArgumentParser:
    from mmtok.core.command_line import HelpFormatter

    p = argparse.ArgumentParser(allow_abbrev=False,
        prog="mmtok train-tokenizer text", formatter_class=HelpFormatter,
        description="Train a byte-level BPE on text files (.jsonl: the text segments of each document; a "
                    "document mmtok tokenize skips for its shape is left out, with a count on stderr).",
    )
    p.add_argument("files", nargs="+", help="text or JSONL files (regular files: name a folder's files, e.g. DIR/*.txt)")
    p.add_argument("--vocab-size", type=int, required=True,
                   help=f"ids in the trained vocabulary (256 to {MAX_VOCAB_SIZE:,}); a small corpus may give fewer")
    p.add_argument("--min-frequency", type=int, default=2, help="a pair merges only if seen this often")
    p.add_argument("--out", required=True,
                   help="checkpoint folder to write: a new or empty folder, or an earlier text tokenizer checkpoint, "
                        "which is replaced (other files beside it are kept); a folder holding anything else is refused")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``mmtok train-tokenizer text FILES --vocab-size N --out DIR``. ``--out`` is held while the command runs
    (:func:`~mmtok.core.run_lock.hold_run_folder`, the lock ``.DIR.lock`` beside it): a second one into
    it is refused, and a checkpoint a killed one left mid-swap is put back before it is looked at. The other
    options and the input files are checked before ``--out`` is held."""
    from mmtok.core.run_lock import hold_run_folder

    p = _parser()
    args = p.parse_args(list(argv) if argv is not None else None)
    refused = _refusal(args)  # before --out is held: a refused command line touches nothing there
    if refused:
        p.error(refused)
    with hold_run_folder(args.out, checkpoint=True):
        refused = _out_refusal(args.out)  # once held: a checkpoint a killed save left is back in its place
        if refused:
            p.error(refused)
        skips: dict[str, _Skips] = {}
        if not any(line.strip() for line in _read_texts(args.files, skips)):  # stops at the first text
            why = "; ".join(seen.said(name) for name, seen in skips.items() if seen.skipped)
            p.error(f"no text to learn from in {', '.join(args.files)}{f': {why}' if why else ''}")
        command = "mmtok train-tokenizer text " + " ".join(
            [*args.files, "--vocab-size", str(args.vocab_size), "--min-frequency", str(args.min_frequency)]
        )
        skips = {}
        tok = train_bpe(
            _read_texts(args.files, skips),
            vocab_size=args.vocab_size,
            min_frequency=args.min_frequency,
            provenance={"files": [os.path.basename(f) for f in args.files], "command": command},
        )
        for name, seen in skips.items():
            if seen.skipped:
                print(f"mmtok train-tokenizer text: note: {seen.said(name)}", file=sys.stderr)
        if tok.vocab_size < args.vocab_size:
            print(f"mmtok train-tokenizer text: note: the corpus gave {tok.vocab_size:,} ids, not the "
                  f"{args.vocab_size:,} asked for: past the 256 byte ids, no pair of tokens within a word occurs "
                  f"--min-frequency ({args.min_frequency}) times or more; more text or a lower --min-frequency "
                  "gives more", file=sys.stderr)
        out = tok.save(args.out)
    print(json.dumps({"out": str(out), "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint,
                      "skipped": sum(seen.skipped for seen in skips.values())}))
    return 0


def _control_bytes(head: bytes) -> int:
    """How many of ``head``'s bytes are control bytes that no text in a one-byte encoding holds (NUL and the other
    C0 codes but tab, line and page breaks and escape), when they are one in a hundred or more (0 otherwise): a
    file that is not UTF-8 and holds them is binary, not text in another encoding.

    >>> _control_bytes(bytes(range(256))), _control_bytes("café\\n".encode("latin1"))
    (26, 0)
    """
    n = sum(b < 0x20 and b not in b"\t\n\v\f\r\x1b" for b in head)
    return n if n and n * 100 >= len(head) else 0


def _media_kind(name: str) -> str | None:
    """``"a picture"``, ``"a sound"`` or ``"a video"`` for a file whose extension names one; None otherwise."""
    suffix = Path(name).suffix.lower()
    for kind, suffixes in (("a picture", IMAGE_SUFFIXES), ("a sound", AUDIO_SUFFIXES), ("a video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            return kind
    return None
