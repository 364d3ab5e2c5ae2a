"""What ``strict=True`` (``--strict``) holds a tokenize run to: it skips no document, whichever run met it.

:func:`none_skipped` refuses a folder whose earlier run skipped a document;
:func:`check_documents` reads every JSONL document a run still has to do before
any is tokenized (its UTF-8, JSON, segment shapes and media paths, the checks a
document is skipped for before its media are decoded), so a bad line 5,000 of a
large corpus stops the run at once, not after hours of work. A media file that
is there but cannot be decoded still stops the run where it is met.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError, DocumentError
from mmtok.data.documents import NO_SEGMENTS, Source, empty, segments
from mmtok.stream.interleave import Interleaver

__all__ = ["check_documents", "none_skipped"]


def none_skipped(source: Source, skipped: Any, out: Path) -> None:
    """A :class:`CorpusError` naming the first document an earlier run into ``out`` skipped (``skipped``: its
    ``{"line", "reason"}`` records): a strict run stops at a bad document, whichever run met it."""
    if isinstance(skipped, list) and skipped:
        first = skipped[0] if isinstance(skipped[0], dict) else {}
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise CorpusError(f"{source.path}:{first.get('line')}: {first.get('reason')}{more}: the earlier run into "
                          f"{out} skipped it, and --strict skips nothing; mend the corpus, then run with --restart or "
                          "into another --out")


def check_documents(source: Source, il: Interleaver, *, first: int, part: tuple[int, int]) -> None:
    """A :class:`CorpusError` naming the first of ``source``'s documents (from number ``first``, ``part``'s only)
    that a run would skip for its text, its JSON, its segments or its media paths, with the reason the run would
    record; nothing is decoded. A JSONL corpus only (an OBELICS row's images may be bytes, checked as they are
    decoded)."""
    if source.layout != "jsonl":
        return
    for line, raw in source.items(first, part):
        try:
            if not empty(segments(raw, source.base, il, line, allow_outside=source.allow_outside)):
                continue
            reason = NO_SEGMENTS
        except (ValueError, TypeError, DocumentError) as e:  # a CorpusError (no tokenizer for it) goes up
            reason = str(e)
        raise CorpusError(f"{source.path}:{line}: {reason} (found before any document was tokenized: --strict "
                          "checks them all first; mend it, or run without --strict to skip it)")
