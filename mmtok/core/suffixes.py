"""The file suffixes (lower case) taken as images, sounds and videos wherever media files are found by name:
one list per kind, for the trainers, ``mmtok encode``/``eval``/``tokenize``, the stream and the demo.

The lists are fixed, not read from the installed libraries, so a folder gives the same files whatever Pillow
version or plugin is installed (a trainer's ``--resume`` checks that it reads the files its run started on).
Images are the picture formats Pillow reads (JPEG 2000, PSD, ICO and DDS among them): not data formats it also opens (FITS, PFM, raw ``.rgb`` dumps),
documents (EPS) or animations of its own kind (FLI). A picture whose format Pillow cannot decode here (AVIF
before Pillow 11.2, HEIC without a plugin) fails on its own line, naming the file. Videos are the containers
PyAV (FFmpeg) reads, MPEG program and transport streams among them (.mpg, .vob, .m2ts), but not ``.ts`` or
``.mts``: TypeScript sources end so too (a transport stream of that name is read where a document says
``{"video": path}``).

>>> ".ppm" in IMAGE_SUFFIXES, ".opus" in AUDIO_SUFFIXES, ".m4a" in VIDEO_SUFFIXES
(True, True, False)
>>> ".jfif" in IMAGE_SUFFIXES, ".avif" in IMAGE_SUFFIXES, ".pfm" in IMAGE_SUFFIXES, ".eps" in IMAGE_SUFFIXES
(True, True, False, False)
>>> ".mpg" in VIDEO_SUFFIXES, ".mpeg" in VIDEO_SUFFIXES, ".ts" in VIDEO_SUFFIXES, ".mts" in VIDEO_SUFFIXES
(True, True, False, False)
>>> IMAGE_SUFFIXES & AUDIO_SUFFIXES, IMAGE_SUFFIXES & VIDEO_SUFFIXES, AUDIO_SUFFIXES & VIDEO_SUFFIXES
(frozenset(), frozenset(), frozenset())
"""

from __future__ import annotations

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

IMAGE_SUFFIXES = frozenset({".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".dib", ".tif", ".tiff",
                            ".webp", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi", ".jp2", ".j2k", ".jpx",
                            ".jpf", ".jpc", ".j2c", ".ico", ".psd", ".pcx", ".sgi", ".dds"})
# .m4a/.aac are read through PyAV; the rest through libsndfile
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus", ".m4a", ".aac"})
# MPEG-1/2 program streams (.mpg, .mpeg, DVD .vob), a Blu-ray transport stream (.m2ts), MPEG-2 video alone (.m2v)
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".vob", ".m2ts", ".m2v"})
