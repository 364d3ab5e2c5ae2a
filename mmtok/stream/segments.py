"""The shape of one JSONL segment, as ``mmtok tokenize`` and ``mmtok train-tokenizer text`` both check it.

A segment is a string, ``{"text": string}``, ``{"image"|"audio": path}`` or ``{"video": path}`` with the
optional keys in :data:`VIDEO_OPTIONS`. Only the shape is checked here: whether a media file exists, and
whether a tokenizer for it was given, is the corpus reader's business.

Imports: :mod:`mmtok.stream.vocab` only.
"""

from __future__ import annotations

from typing import Any

from mmtok.stream.vocab import MEDIA

__all__ = ["VIDEO_OPTIONS", "segment_shape"]

VIDEO_OPTIONS = ("soundtrack", "chunk_seconds")  # optional keys of a {"video": path} segment


def segment_shape(seg: Any, k: int) -> tuple[str, str, dict[str, Any]]:
    """Segment ``k`` as ``(key, value, options)``: its key (text or a medium), the string it holds and a video's
    options; ValueError says what is wrong with its shape.

    >>> segment_shape("a", 0), segment_shape({"video": "v.mp4", "chunk_seconds": 2}, 1)
    (('text', 'a', {}), ('video', 'v.mp4', {'chunk_seconds': 2}))
    >>> segment_shape({"image": "x.png", "chunk_seconds": 2}, 3)
    Traceback (most recent call last):
    ...
    ValueError: segment 3 must be {"text": ...}, {"image"|"audio": path} or {"video": path} with optional soundtrack and chunk_seconds, not one with the keys 'image', 'chunk_seconds'
    >>> segment_shape({"txt": "a"}, 0)
    Traceback (most recent call last):
    ...
    ValueError: segment 0 must be {"text": ...}, {"image"|"audio": path} or {"video": path} with optional soundtrack and chunk_seconds, not one with the keys 'txt'
    """
    if isinstance(seg, str):
        return "text", seg, {}
    keys = [key for key in ("text", *MEDIA) if isinstance(seg, dict) and key in seg]
    opts = {key: val for key, val in seg.items() if key not in keys} if len(keys) == 1 else {}
    if len(keys) != 1 or (opts and keys != ["video"]) or set(opts) - set(VIDEO_OPTIONS):
        got = (f", not one with the keys {', '.join(map(repr, seg))}" if isinstance(seg, dict) and seg
               else f", not {_json_kind(seg)}")
        raise ValueError(f'segment {k} must be {{"text": ...}}, {{"image"|"audio": path}} or '
                         f'{{"video": path}} with optional {" and ".join(VIDEO_OPTIONS)}{got}')
    key, value = keys[0], seg[keys[0]]
    if not isinstance(value, str):
        raise ValueError(f"segment {k}: {key} must be a string, got {type(value).__name__}")
    return key, value, opts


def _json_kind(value: Any) -> str:
    """What a JSON value that is no segment is, in JSON's words.

    >>> _json_kind(None), _json_kind(3), _json_kind([]), _json_kind({}), _json_kind(True)
    ('null', 'a number', 'a list', 'an empty object', 'true')
    """
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "an empty object" if value == {} else type(value).__name__
