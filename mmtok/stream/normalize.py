"""Documents -> canonical segments: the reading behind :meth:`Interleaver.normalize` and ``encode``.

Each segment of a document (see :mod:`mmtok.stream.interleave` for what a
segment may be) becomes ``{"text": str}`` or media as checked codes:
``{"image_codes" [h, w]}``, ``{"audio_codes" [n]}``, ``{"video_codes" [t, h, w]}``.
Media are encoded by the tokenizers of a :class:`Tokenizers` (an
:class:`~mmtok.stream.interleave.Interleaver` is one); a video file may become
chunks of frames, each followed by its stretch of soundtrack
(:func:`video_segments`). Codes are checked against the vocabulary's ranges,
and a video's first frame may not hold the video tokenizer's repeat code.
Adjacent text is merged and empty text dropped. What a tokenizer raises that
says the media is bad (ValueError, TypeError, OSError, RuntimeError) becomes a
:class:`~mmtok.core.errors.DocumentError` naming the segment; anything else is
the tokenizer's own fault and is raised as it is, marked with the segment it
was reading (:func:`failed_segment`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mmtok.core.errors import DocumentError
from mmtok.core.protocol import GridTokenizer, RateTokenizer, takes_keyword
from mmtok.core.seconds import check_chunk_seconds
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.stream.parse import codes_tensor
from mmtok.stream.segments import VIDEO_OPTIONS
from mmtok.stream.vocab import Vocabulary

__all__ = ["Tokenizers", "canonical_segments", "failed_segment", "need", "video_segments"]

_SEGMENT = "_mmtok_segment"  # the attribute that marks an exception with the segment whose tokenizer raised it


class Tokenizers(Protocol):
    """What segments are read with: the vocabulary and the media tokenizers (None where there is none).

    :class:`~mmtok.stream.interleave.Interleaver` is one; reading needs nothing else of it.
    """

    vocab: Vocabulary
    image: GridTokenizer | None
    audio: RateTokenizer | None
    video: GridTokenizer | None


def _samples_per_token(audio: Any, rate: int) -> int | None:
    """Samples of one audio token at ``rate``: the tokenizer's own ``samples_per_token`` attribute, else
    ``rate / tokens_per_second`` when that is a whole number; None when neither gives one (7 tokens/s at
    16 kHz).

    >>> class A: tokens_per_second = 12.5
    >>> class B: tokens_per_second = 7
    >>> _samples_per_token(A(), 16000), _samples_per_token(B(), 16000)
    (1280, None)
    """
    own = getattr(audio, "samples_per_token", None)
    if isinstance(own, int) and own >= 1:
        return own
    per = rate / float(getattr(audio, "tokens_per_second", 0) or 0) if getattr(audio, "tokens_per_second", 0) else 0
    return int(per) if per >= 1 and float(per).is_integer() else None


def canonical_segments(tok: Tokenizers, doc: Iterable[Any]) -> list[dict[str, Any]]:
    """The canonical segments of ``doc`` (a list of segments, or any iterable of them such as a generator):
    tagged dicts, media as codes, text merged."""
    if isinstance(doc, (str, bytes, Mapping, torch.Tensor, np.ndarray)) or not isinstance(doc, Iterable):
        hint = (": for ids, Interleaver.stream(ids) makes their Stream" if isinstance(doc, (torch.Tensor, np.ndarray))
                else ": for a JSONL line's document pass doc['segments']" if isinstance(doc, Mapping) and "segments" in doc
                else "" if isinstance(doc, bytes) else ": for one segment pass [doc]")
        raise TypeError(f"a document is a list of segments, got {type(doc).__name__}{hint}")
    out: list[dict[str, Any]] = []
    texts: list[str] = []  # the text since the last medium, joined once

    def end_text() -> None:
        joined = "".join(texts)
        texts.clear()
        if joined:
            out.append({"text": joined})

    for k, seg in enumerate(doc):
        for item in _segments(tok, seg, k):
            if "text" in item:
                texts.append(item["text"])
                continue
            end_text()
            out.append(item)
    end_text()
    return out


def need(tok: Tokenizers, name: str, k: int) -> Any:
    """The ``name`` tokenizer of ``tok`` (``"image"``, ``"audio"`` or ``"video"``), which segment ``k`` needs."""
    have = getattr(tok, name)
    if have is None:
        raise DocumentError(f"segment {k} is {'an' if name[0] in 'aeiou' else 'a'} {name} but this "
                            f"Interleaver has no {name} tokenizer; pass {name}=mmtok.load({name!r})")
    return have


def _segments(tok: Tokenizers, seg: Any, k: int) -> list[dict[str, Any]]:
    """Segment ``k`` as canonical segments: one, or a video file's chunks with its soundtrack."""
    if isinstance(seg, Path) and seg.suffix.lower() in VIDEO_SUFFIXES:
        return video_segments(tok, seg, k, {})
    if isinstance(seg, Mapping) and "video" in seg:
        opts = {key: val for key, val in seg.items() if key != "video"}
        unknown = sorted(set(opts) - set(VIDEO_OPTIONS))
        if unknown:
            raise DocumentError(f"segment {k}: a video segment takes the options {list(VIDEO_OPTIONS)}; "
                                f"got {unknown}")
        return video_segments(tok, seg["video"], k, opts)
    return [_segment(tok, seg, k)]


def video_segments(tok: Tokenizers, x: Any, k: int, opts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A video (segment ``k``): its codes, and, for a file with sound, its soundtrack after each chunk of frames.

    ``soundtrack``: None (default) includes the sound when ``tok`` has an audio
    tokenizer and the file has an audio stream; True requires both; False never.
    ``chunk_seconds``: cut the video into chunks of that many seconds, each
    followed by its stretch of sound (default: one chunk).
    """
    soundtrack, chunk = opts.get("soundtrack"), opts.get("chunk_seconds")
    if soundtrack is not None and not isinstance(soundtrack, bool):
        raise TypeError(f"segment {k}: soundtrack must be true, false or absent, got {soundtrack!r}")
    try:  # inf and 1e308 are refused too: a video tokenizer counts its frames in them
        chunk = check_chunk_seconds(chunk, error=ValueError, whole="absent: one chunk")
    except ValueError as e:
        raise DocumentError(f"segment {k}: {e}") from None
    video = need(tok, "video", k)
    is_file = isinstance(x, (str, Path))
    if soundtrack and tok.audio is None:
        raise DocumentError(f"segment {k}: soundtrack=True needs an audio tokenizer; pass audio=mmtok.load('audio')")
    if (soundtrack or chunk is not None) and not (is_file and hasattr(video, "segments")):
        raise DocumentError(f"segment {k}: soundtrack and chunk_seconds need a video file and a video tokenizer "
                            "with segments() (mmtok.VideoTokenizer)")
    sound = tok.audio is not None if soundtrack is None else soundtrack
    if not is_file or not hasattr(video, "segments") or (not sound and chunk is None):
        return [{"video_codes": _video_codes(tok, x, k)}]
    rate = int(getattr(tok.audio, "sample_rate", 16000))
    per_token = _samples_per_token(tok.audio, rate)  # chunks end on whole tokens (None: no whole number)
    takes = "samples_per_token" in inspect.signature(video.segments).parameters  # a user's segments() may not
    try:
        parts = video.segments(x, chunk_seconds=chunk, audio=sound, sample_rate=rate,
                               **({"samples_per_token": per_token} if takes and per_token else {}))
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        raise DocumentError(f"segment {k} (video {x}): {e}") from e
    except Exception as e:  # the tokenizer's own fault: raised as it is, with where
        _mark(e, f"segment {k} (video {x})")
        raise
    if soundtrack and not any("audio" in p for p in parts):
        raise DocumentError(f"segment {k} (video {x}): soundtrack=True but the file has no audio stream")
    out: list[dict[str, Any]] = []
    for part in parts:
        if "video_codes" in part:
            codes = codes_tensor(part["video_codes"], dims=3, what=f"segment {k}: the video tokenizer's codes")
            out.append({"video_codes": _check(tok, codes, "video", k)})
            continue
        codes = codes_tensor(_media(tok, "audio", part["audio"], k, sample_rate=part["sample_rate"]),
                             dims=1, what=f"segment {k}: the audio tokenizer's codes")
        if codes.numel():  # a sliver of sound shorter than one audio token adds nothing
            out.append({"audio_codes": _check(tok, codes, "audio", k)})
    return out


def _segment(tok: Tokenizers, seg: Any, k: int) -> dict[str, Any]:
    from PIL import Image

    if isinstance(seg, str):
        return {"text": seg}
    if isinstance(seg, Image.Image):
        return {"image_codes": _image_codes(tok, seg, k)}
    if isinstance(seg, Path):
        suffix = seg.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return {"image_codes": _image_codes(tok, seg, k)}
        if suffix in AUDIO_SUFFIXES:
            return {"audio_codes": _audio_codes(tok, seg, None, k)}
        raise DocumentError(f"segment {k}: cannot tell from its suffix whether {seg} is an image, audio or "
                            "video; use {'image': path}, {'audio': path} or {'video': path}")
    if isinstance(seg, Mapping):
        keys = set(seg) - {"sample_rate"}
        if len(keys) == 2 and any(keys == {m, f"{m}_codes"} for m in ("image", "audio", "video")):
            (name,) = keys - {key for key in keys if key.endswith("_codes")}
            raise DocumentError(f"segment {k} holds both {name!r} and {name + '_codes'!r}, as decode(..., media=True) "
                                f"gives them: keep one ({{{name + '_codes'!r}: ...}} gives back the same ids)")
        if len(keys) != 1:
            raise DocumentError(f"segment {k}: a tagged segment has one of the keys text, image, audio, video, "
                                f"image_codes, audio_codes, video_codes; got {sorted(seg)}")
        (key,) = keys
        if "sample_rate" in seg and key not in ("audio", "audio_codes"):
            raise DocumentError(f"segment {k}: sample_rate belongs to an audio segment, not to {key!r}; remove it")
        val = seg[key]
        if key == "text":
            if not isinstance(val, str):
                raise TypeError(f"segment {k}: text must be a str, got {type(val).__name__}")
            return {"text": val}
        if key == "image":
            return {"image_codes": _image_codes(tok, val, k)}
        if key == "audio":
            return {"audio_codes": _audio_codes(tok, val, seg.get("sample_rate"), k)}
        if key == "video_codes":
            return {"video_codes": _check(tok, codes_tensor(val, dims=3, what=f"segment {k} video_codes"), "video", k)}
        if key == "image_codes":
            return {"image_codes": _check(tok, codes_tensor(val, dims=2, what=f"segment {k} image_codes"), "image", k)}
        if key == "audio_codes":
            return {"audio_codes": _check(tok, codes_tensor(val, dims=1, what=f"segment {k} audio_codes"), "audio", k)}
        raise DocumentError(f"segment {k}: unknown segment key {key!r}")
    raise TypeError(f"segment {k}: cannot interleave a {type(seg).__name__}; use str, PIL.Image, Path or a tagged dict")


def _check(tok: Tokenizers, codes: torch.Tensor, name: str, k: int) -> torch.Tensor:
    """``codes`` of segment ``k`` if they fit the vocabulary's ``name`` range (and, for a video, its first frame
    holds no repeat code); DocumentError otherwise."""
    size = len(tok.vocab.range(name)) if tok.vocab.has(name) else 0
    if size == 0:
        raise DocumentError(f"segment {k} is {name} codes but the vocabulary has no {name} range")
    if codes.numel() == 0:
        raise DocumentError(f"segment {k}: {name} codes are empty (shape {tuple(codes.shape)})")
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= size:
        raise DocumentError(f"segment {k}: {name} code {lo if lo < 0 else hi} is outside [0, {size})")
    rep = getattr(tok.video, "repeat_id", None) if name == "video" else None
    if rep is not None and bool((codes[0] == rep).any()):
        raise DocumentError(f"segment {k}: the video's first frame holds the repeat code {rep}, but no frame "
                            "precedes it to repeat")
    return codes


def _media(tok: Tokenizers, name: str, x: Any, k: int, **kwargs: Any) -> Any:
    have = need(tok, name, k)
    src = f" {x}" if isinstance(x, (str, Path)) else ""
    if "sample_rate" in kwargs and not takes_keyword(have.encode, "sample_rate"):
        kwargs = _own_rate(have, name, kwargs, f"segment {k} ({name}{src})")
    try:
        return have.encode(x, **kwargs)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        raise DocumentError(f"segment {k} ({name}{src}): {e}") from e
    except Exception as e:  # the tokenizer's own fault (a KeyError, its own class): raised as it is, with where
        _mark(e, f"segment {k} ({name}{src})")
        raise


def _own_rate(have: Any, name: str, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """``kwargs`` without ``sample_rate`` for a tokenizer whose ``encode`` takes the samples alone (the
    :class:`~mmtok.core.protocol.MediaTokenizer` contract): samples at its own ``sample_rate`` are what it
    encodes; at another rate, or for one that states none, a :class:`DocumentError` (they would be read wrong)."""
    rate, own = kwargs["sample_rate"], getattr(have, "sample_rate", None)
    if own is not None and float(own) == float(rate):
        return {key: value for key, value in kwargs.items() if key != "sample_rate"}
    at, fix = (("states no rate of its own", "give it a sample_rate attribute (the rate its encode expects)")
               if own is None else (f"encodes at {own} Hz", f"resample to {own} Hz first"))
    raise DocumentError(f"{where}: samples at {rate} Hz, but the {name} tokenizer {type(have).__name__} takes no "
                        f"sample_rate and {at}: {fix}")


def failed_segment(e: BaseException) -> str | None:
    """The segment whose media tokenizer raised ``e`` (``"segment 1 (image /data/camera.png)"``), for an exception
    that is no reason to skip the document and is raised as it is; None for any other.

    >>> class Broken:
    ...     def encode(self, x): raise KeyError("layer7")
    >>> class Tok:
    ...     image = Broken()
    >>> try:
    ...     _media(Tok(), "image", "a.png", 1)
    ... except KeyError as e:
    ...     failed_segment(e)
    'segment 1 (image a.png)'
    """
    return getattr(e, _SEGMENT, None)


def _mark(e: BaseException, where: str) -> None:
    """Mark ``e`` with the segment ``where`` its tokenizer was reading (the innermost mark stays), and, from
    Python 3.11, add it as a note a traceback shows."""
    if failed_segment(e) is not None:
        return
    try:
        setattr(e, _SEGMENT, where)
    except AttributeError:  # an exception class with __slots__ and no __dict__
        return
    if hasattr(e, "add_note"):
        e.add_note(f"raised while tokenizing {where}")


def _image_codes(tok: Tokenizers, x: Any, k: int) -> torch.Tensor:
    codes = _media(tok, "image", x, k)
    return _check(tok, codes_tensor(codes, dims=2, what=f"segment {k}: the image tokenizer's codes"), "image", k)


def _video_codes(tok: Tokenizers, x: Any, k: int) -> torch.Tensor:
    codes = _media(tok, "video", x, k)
    return _check(tok, codes_tensor(codes, dims=3, what=f"segment {k}: the video tokenizer's codes"), "video", k)


def _audio_codes(tok: Tokenizers, x: Any, sample_rate: int | None, k: int) -> torch.Tensor:
    codes = _media(tok, "audio", x, k) if sample_rate is None else _media(tok, "audio", x, k, sample_rate=sample_rate)
    return _check(tok, codes_tensor(codes, dims=1, what=f"segment {k}: the audio tokenizer's codes"), "audio", k)
