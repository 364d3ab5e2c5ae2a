"""Video: file -> frames (PyAV) -> per-frame image codes ``[T, h, w]``, plus the soundtrack.

:mod:`~mmtok.video.read` samples frames and reads the soundtrack (decoded and laid on the frames' clock by
:mod:`~mmtok.video.soundtrack`); :mod:`~mmtok.video.tokenizer` samples frames and runs an image tokenizer on
each; :mod:`~mmtok.video.temporal` compresses codes along time (repeat and
run-length coding); :mod:`~mmtok.video.write` writes frames and a soundtrack as MP4.

Imports: :mod:`mmtok.core`, :mod:`mmtok.vq`, :mod:`mmtok.image`, :mod:`mmtok.audio` (its PyAV audio decoder).
"""

from __future__ import annotations

from mmtok.video.read import read_video as read_video
from mmtok.video.tokenizer import VideoTokenizer as VideoTokenizer

__all__ = ['VideoTokenizer', 'read_video']
