"""Whether a file's first bytes are text in a wide encoding (UTF-16 or UTF-32), which is not UTF-8.

``mmtok tokenize`` and ``mmtok train-tokenizer text`` read UTF-8 only; a file saved as UTF-16 or UTF-32 (as some
Windows editors and PowerShell write it) is refused naming its encoding, found by its byte order mark
(:func:`wide_encoding`) or, without one, by its NUL bytes (:func:`unmarked_wide_encoding`): :func:`wide_text`.

Imports: nothing of mmtok.
"""

from __future__ import annotations

__all__ = ["WIDE_BOMS", "WIDE_MIN_ASCII", "WIDE_SNIFF_BYTES", "unmarked_wide_encoding", "wide_encoding", "wide_text"]

# byte order marks of the wide encodings a text file is saved in by mistake (UTF-32's little-endian one first:
# it starts with UTF-16's)
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
             (b"\xfe\xff", "UTF-16"))
WIDE_SNIFF_BYTES = 4096  # bytes of a file's start looked at for wide text saved without a byte order mark
WIDE_MIN_ASCII = 8  # ASCII characters (one byte beside NULs) that must show before bytes are called wide text


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
