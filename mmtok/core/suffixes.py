"""The file suffixes (lower case) taken as images, sounds and videos wherever media files are found by name:
one list per kind, for the trainers, ``mmtok encode``/``eval``/``tokenize``, the stream and the demo.

Images are the common formats and every other one Pillow opens here (AVIF, JFIF, TGA, ... and any plugin
registered before this module is imported), less those that are not pictures to tokenize: formats Pillow only
identifies (HDF5, GRIB, BUFR, WMF, MPEG's ``.mpg``), documents it reads through Ghostscript (EPS, PS), and any
suffix that names a sound or a video.

>>> ".ppm" in IMAGE_SUFFIXES, ".opus" in AUDIO_SUFFIXES, ".m4a" in VIDEO_SUFFIXES
(True, True, False)
>>> ".jfif" in IMAGE_SUFFIXES, ".mpg" in IMAGE_SUFFIXES, ".eps" in IMAGE_SUFFIXES, ".pdf" in IMAGE_SUFFIXES
(True, False, False, False)
>>> IMAGE_SUFFIXES & AUDIO_SUFFIXES, IMAGE_SUFFIXES & VIDEO_SUFFIXES, AUDIO_SUFFIXES & VIDEO_SUFFIXES
(frozenset(), frozenset(), frozenset())
"""

from __future__ import annotations

from PIL import Image, ImageFile

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

# .m4a/.aac are read through PyAV; the rest through libsndfile
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus", ".m4a", ".aac"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
NOT_PICTURES = frozenset({"EPS", "MPEG"})  # Pillow formats it opens that are not pictures: Ghostscript documents, video


def _pillow_suffixes() -> frozenset[str]:
    """The suffixes of the formats Pillow opens here and decodes itself: not a stub that only identifies a file
    (its ``StubImageFile`` needs a handler from elsewhere), not one of :data:`NOT_PICTURES`."""
    named = Image.registered_extensions()  # loads every plugin first, and with them Image.OPEN
    opens = {fmt for fmt, (factory, _accept) in Image.OPEN.items()
             if not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))}
    return frozenset(s for s, fmt in named.items() if fmt in opens - NOT_PICTURES)


IMAGE_SUFFIXES = (frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
                  | _pillow_suffixes()) - AUDIO_SUFFIXES - VIDEO_SUFFIXES
