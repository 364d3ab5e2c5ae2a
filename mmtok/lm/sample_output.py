"""The files ``mmtok sample`` writes: a sampled picture (``--image-out``) or sound (``--audio-out``).

:func:`check_output` refuses, before any model work, a path that cannot take the file: a folder, a folder
that is not there or not writable, an extension Pillow or soundfile cannot write, or a file in the way that
``mmtok sample`` did not write. :func:`write_image` and :func:`write_sound` write atomically and mark what
they write with :data:`MARK` where the format keeps it (:data:`MARKED_FORMATS`;
:func:`~mmtok.data.media_files.write_marked_image`, :func:`~mmtok.data.media_files.write_marked_sound`): those
are the only files a later run replaces, and a user's own file never is (:func:`~mmtok.data.media_files.marked`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.core.errors import UsageError
from mmtok.core.files import read_only_folder
from mmtok.data.media_files import (
    SOUND_MARKED,
    marked,
    refuse_foreign,
    write_marked_image,
    write_marked_sound,
)

__all__ = ["MARK", "MARKED_FORMATS", "check_output", "write_image", "write_sound"]

MARK = "mmtok sample"  # in every file sample writes in a format that keeps it: the files it replaces
MARKED_FORMATS = ("PNG", *SOUND_MARKED)  # PNG: Software text; sounds: software string


def _image_format(path: Path) -> str | None:
    """The Pillow format a sampled image is written in: its extension's (``.jpg``: JPEG), PNG without one;
    None for an extension Pillow cannot write an RGB picture in (tried on one pixel: Pillow lists formats such
    as XBM that take other modes only).

    >>> _image_format(Path("a.jpg")), _image_format(Path("a")), _image_format(Path("a.txt")), _image_format(Path("a.xbm"))
    ('JPEG', 'PNG', None, None)
    """
    import io

    from PIL import Image

    if not path.suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE:
        return None
    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=fmt)
    except Exception:
        return None
    return fmt


def _sound_format(path: Path) -> str:
    """The soundfile format a sampled sound is written in: its extension's, upper-cased (``.flac``: FLAC)."""
    return path.suffix.lower().lstrip(".").upper()


def check_output(path: Path, *, audio: bool) -> None:
    """A :class:`UsageError` when ``path`` cannot take a sampled image or sound: a folder, a folder that
    does not exist or cannot be written, an extension Pillow (image) or soundfile (16-bit PCM sound)
    cannot write, or a file there that ``mmtok sample`` did not write."""
    flag = "--audio-out" if audio else "--image-out"
    folder = path.resolve().parent
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist")
    if read_only_folder(folder) is not None:
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable")
    if not audio and _image_format(path) is None:
        raise UsageError(f"{flag} {path}: Pillow cannot write {path.suffix} images; write .png, .jpg or another "
                         "image extension")
    if audio:
        import soundfile as sf

        fmt = _sound_format(path)
        if fmt not in sf.available_formats() or not sf.check_format(fmt, "PCM_16"):
            raise UsageError(f"{flag} {path}: soundfile cannot write {path.suffix or 'a file without an extension'} as "
                             "16-bit PCM; write .wav, .flac, .aiff, .caf, .rf64, .au or .w64")
    _refuse_foreign(path, flag)


def _refuse_foreign(path: Path, flag: str) -> None:
    """A :class:`UsageError` when a file without :data:`MARK` is at ``path`` (as ``mmtok decode`` refuses); in a
    format that keeps no mark (``.jpg``, ``.au``) it may be an earlier run's output, and the message says so."""
    keeps = (_image_format(path) == "PNG") if flag == "--image-out" else _sound_format(path) in SOUND_MARKED
    what = ("was not written by 'mmtok sample'" if keeps else
            f"keeps no mark of 'mmtok sample' (a {path.suffix} file cannot), so it is not replaced even if an "
            "earlier run wrote it")
    refuse_foreign([(path, path.parent)], lambda p, _: p, lambda p: marked(p, MARK), what, flag=f"{flag} ",
                   fix=f" (it replaces only the {', '.join(MARKED_FORMATS[:-1])} and {MARKED_FORMATS[-1]} files it "
                   "wrote); move it, or give another name")


def write_image(path: Path, img: torch.Tensor) -> None:
    """``img`` (``[3, H, W]`` in [0, 1]) to ``path`` atomically, in its extension's format (:func:`_image_format`);
    a PNG carries :data:`MARK`. A file not ours that appeared there since :func:`check_output` is refused."""
    _refuse_foreign(path, "--image-out")
    write_marked_image(path, img, MARK, fmt=_image_format(path) or "PNG")


def write_sound(path: Path, wave: torch.Tensor, rate: int) -> None:
    """``wave`` to ``path`` atomically as 16-bit PCM in its extension's format, scaled down if it would clip; a
    format of :data:`MARKED_FORMATS` (WAV, FLAC, ...) carries :data:`MARK`. A file not ours that appeared there
    since :func:`check_output` is refused."""
    _refuse_foreign(path, "--audio-out")
    samples = wave.detach().cpu().float().reshape(-1)
    samples = samples / max(1.0, float(samples.abs().max()) / 0.99)  # never clips
    write_marked_sound(path, samples, rate, MARK, subtype="PCM_16", fmt=_sound_format(path))
