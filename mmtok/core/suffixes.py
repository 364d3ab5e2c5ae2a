"""The file suffixes (lower case) taken as images, sounds and videos wherever media files are found by name:
one list per kind, for the trainers, ``mmtok encode``/``eval``/``tokenize``, the stream and the demo.

>>> ".ppm" in IMAGE_SUFFIXES, ".opus" in AUDIO_SUFFIXES, ".m4a" in VIDEO_SUFFIXES
(True, True, False)
>>> IMAGE_SUFFIXES & AUDIO_SUFFIXES, AUDIO_SUFFIXES & VIDEO_SUFFIXES
(frozenset(), frozenset())
"""

from __future__ import annotations

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# .m4a/.aac are read through PyAV; the rest through libsndfile
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus", ".m4a", ".aac"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
