"""Media files named on a command line: their kind, the folders searched, one line per file, and the mark.

``mmtok encode``, ``mmtok decode`` and ``mmtok eval`` take files and folders, work through them
one file at a time, and report a file that fails on its own line while the others go on. A run over
many files (``mmtok tokenize``) says the sounds of digital silence it read once, at its end
(:func:`silence_collected`), not one line each. What a command writes carries its mark where the format keeps
one (:func:`write_marked_image`, :func:`write_marked_sound`), and only a file with it is replaced later
(:func:`marked`):

>>> media_kind(Path("a/b.JPG")), media_kind(Path("talk.flac")), media_kind(Path("clip.mp4"))
('image', 'audio', 'video')
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from tqdm import tqdm

from mmtok.audio.av_read import sound_only
from mmtok.audio.io import SILENCE_SINK, SilenceWarning, warn_silence
from mmtok.core.command_output import counted
from mmtok.core.errors import MmtokError, UsageError
from mmtok.core.files import read_only_folder
from mmtok.core.run_lock import sigterm_interrupts
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.core.warning_filters import warnings_ignored
from mmtok.data.codes import CODES_SUFFIX, atomic_file

if TYPE_CHECKING:
    import torch

__all__ = ["CREATOR_MARKED", "MEDIA_SUFFIXES", "SOUND_MARKED", "StopRun", "check_out_folder", "check_vocoder_flag",
           "expand_paths", "few", "file_kinds", "given_again", "marked", "media_kind", "refuse_collisions",
           "refuse_foreign", "run_each", "silence_collected", "write_marked_image", "write_marked_sound"]

Done = TypeVar("Done")  # what a worker process gives back, with the silence warnings it collected
KINDS = (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES), ("video", VIDEO_SUFFIXES))
MEDIA_SUFFIXES = IMAGE_SUFFIXES | AUDIO_SUFFIXES | VIDEO_SUFFIXES
OWN_SUFFIXES = MEDIA_SUFFIXES | {CODES_SUFFIX}  # what mmtok reads or writes: passed over quietly in a folder
NAMED = 3  # files named on a note line (passed over, or named twice) before the count of the rest
HINTS = {s: "HEIC/HEIF pictures: convert them (to JPEG or PNG), or register pillow-heif's opener "
         "(pillow_heif.register_heif_opener()) before importing mmtok" for s in (".heic", ".heif")}
HINTS.update({s: "MPEG transport streams: rename them .m2ts (.ts and .mts name TypeScript sources too, so they are "
              "not taken as video)" for s in (".ts", ".mts")})
MARK_WINDOW = 1 << 16  # bytes read from a document's start or end to find its Creator there
CREATOR_MARKED = {  # documents that carry a mark as their Creator (matplotlib's savefig(metadata={"Creator": mark})):
    # where it is written (the start or the end of the file) and how, with %s for the mark
    ".pdf": ("end", rb"/Creator \(%s\)"),  # the document information dictionary, written last
    ".svg": ("start", rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>%s</dc:title>"),  # the <metadata> block, first
    ".eps": ("start", rb"^%%%%Creator: %s\r?$"),  # a DSC header comment
    ".ps": ("start", rb"^%%%%Creator: %s\r?$"),
}
SOUND_MARKED = ("WAV", "FLAC", "AIFF", "CAF", "RF64", "WAVEX")  # soundfile formats whose software string libsndfile keeps


def media_kind(path: Path) -> str:
    """``"image"``, ``"audio"`` or ``"video"`` by the file's extension; a :class:`UsageError` naming the
    file and the extensions known otherwise."""
    suffix = path.suffix.lower()
    for kind, suffixes in KINDS:
        if suffix in suffixes:
            return kind
    known = "; ".join(f"{kind}: {' '.join(sorted(suffixes))}" for kind, suffixes in KINDS)
    hint = f"; {HINTS[suffix]}" if suffix in HINTS else ""
    raise UsageError(f"{path}: not an image, a sound or a video by its extension ({known}){hint}")


def file_media_kind(path: Path) -> str:
    """:func:`media_kind`, except that a video file holding sound and no video stream (speech saved as ``.mp4``;
    cover pictures aside) is ``"audio"``: it is encoded, decoded and scored as the sound it is."""
    kind = media_kind(path)
    if kind == "video" and path.is_file() and sound_only(path):
        return "audio"
    return kind


def marked(path: Path, mark: str) -> bool:
    """Whether ``path`` is a file carrying ``mark``, the way mmtok marks what its commands write (so they replace
    only their own files): a video's comment, the Creator of a PDF, SVG, EPS or PS (:data:`CREATOR_MARKED`), else
    a PNG's Software text or a sound's software string (where libsndfile keeps one: :data:`SOUND_MARKED`),
    whatever the file's extension. False for any other file, or one unreadable as its kind."""
    if not path.is_file():
        return False
    try:
        if path.suffix.lower() in CREATOR_MARKED:
            return _creator_marked(path, mark)
        if path.suffix.lower() in VIDEO_SUFFIXES:
            from mmtok.video.read import pyav

            with pyav().open(str(path)) as container:
                return container.metadata.get("comment") == mark
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings_ignored(Image.DecompressionBombWarning):  # only the header and text chunks are read
                with Image.open(path, formats=["PNG"]) as im:
                    return im.info.get("Software") == mark
        except Image.DecompressionBombError:  # over twice Pillow's limit: taken as not mmtok's (never replaced)
            return False
        except UnidentifiedImageError:  # not a PNG: a sound, or no file of mmtok's
            import soundfile as sf

            with sf.SoundFile(path) as sound:
                return str(sound.software).startswith(mark)  # libsndfile appends its own name
    except (OSError, ValueError, RuntimeError):  # unreadable as its kind (PIL's UnidentifiedImageError: OSError)
        return False


def write_marked_image(path: Path, img: torch.Tensor, mark: str, *, fmt: str = "PNG") -> Path:
    """``img`` (``[3, H, W]`` in [0, 1], clamped) to ``path`` atomically in the Pillow format ``fmt``; a PNG carries
    ``mark`` as its Software text (:func:`marked`), other formats no mark. Returns ``path``.

    >>> import tempfile, torch
    >>> p = write_marked_image(Path(tempfile.mkdtemp()) / "a.png", torch.rand(3, 4, 5), "mmtok doc")
    >>> marked(p, "mmtok doc"), marked(p, "another")
    (True, False)
    """
    from PIL import Image, PngImagePlugin

    pixels = img.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", mark)
    options = {"pnginfo": info} if fmt == "PNG" else {}
    return atomic_file(path, lambda f: Image.fromarray(pixels).save(f, format=fmt, **options))


def write_marked_sound(path: Path, wave: torch.Tensor, rate: int, mark: str, *, subtype: str, fmt: str) -> Path:
    """``wave`` (mono, ``rate`` samples per second, as it is: nothing scaled) to ``path`` atomically in the soundfile
    format ``fmt`` and ``subtype`` (``"FLOAT"``, ``"PCM_16"``); a format of :data:`SOUND_MARKED` carries ``mark`` as
    its software string (:func:`marked`), other formats no mark. Returns ``path``.

    >>> import tempfile, torch
    >>> p = Path(tempfile.mkdtemp()) / "a.flac"
    >>> _ = write_marked_sound(p, torch.zeros(160), 16000, "mmtok doc", subtype="PCM_16", fmt="FLAC")
    >>> marked(p, "mmtok doc")
    True
    """
    import soundfile as sf

    samples = wave.detach().cpu().float().reshape(-1).numpy()

    def write(f: IO[bytes]) -> None:
        with sf.SoundFile(f, "w", rate, 1, subtype, format=fmt) as out:
            if fmt in SOUND_MARKED:
                out.software = mark
            out.write(samples)
        if isinstance(f, io.BytesIO):
            _clear_peak_time(f.getbuffer())

    return atomic_file(path, write)


def _clear_peak_time(data: memoryview) -> bool:
    """Zero the time stamp libsndfile writes into the PEAK chunk of a float WAV, RF64 or AIFF file (the time of
    writing), so the same samples give the same bytes; True when there was one. Other files are left as they are.

    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO(); sf.write(buf, np.full(8, 0.5, np.float32), 8000, format="WAV", subtype="FLOAT")
    >>> _clear_peak_time(buf.getbuffer()), float(sf.read(io.BytesIO(buf.getvalue()))[0].max())
    (True, 0.5)
    """
    head = bytes(data[:12])
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        order = "little"
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        order = "big"
    else:
        return False
    at = 12
    while at + 8 <= len(data):
        chunk, size = bytes(data[at:at + 4]), int.from_bytes(data[at + 4:at + 8], order)
        if chunk == b"PEAK":
            if size >= 8 and at + 16 <= len(data):
                data[at + 12:at + 16] = bytes(4)  # after the chunk's id, size and version
                return True
            return False
        if chunk in (b"data", b"SSND"):  # the samples: every header chunk comes before them
            return False
        at += 8 + size + (size & 1)
    return False


def _creator_marked(path: Path, mark: str) -> bool:
    """Whether the document ``path`` names ``mark`` as its Creator where :data:`CREATOR_MARKED` says it is."""
    end, pattern = CREATOR_MARKED[path.suffix.lower()]
    with open(path, "rb") as f:
        if end == "end":
            f.seek(max(0, f.seek(0, os.SEEK_END) - MARK_WINDOW))
        window = f.read(MARK_WINDOW)
    return re.search(pattern % re.escape(mark.encode()), window, re.MULTILINE) is not None


def refuse_foreign(pairs: Sequence[tuple[Path, Path]], target: Callable[[Path, Path], Path | None],
                   ours: Callable[[Path], bool], what: str, *, flag: str = "",
                   fix: str = ", so it is not replaced; nothing was written (move it, or give another --out)") -> None:
    """A :class:`UsageError` before any work when a file the command would write (``target(path, out)``; None:
    none to check) is there and is not one it wrote before (``ours``, e.g. :func:`marked`): a user's own file is
    never replaced, an earlier output is. The message is ``f"{flag}{file} is there and {what}{fix}"``: ``what``
    says why it is not (``"is not a code file from 'mmtok encode'"``), ``flag`` names the option that gave the
    file (``"--plot "``), ``fix`` what to do."""
    for path, out in pairs:
        found = target(path, out)
        if found is not None and (found.exists() or found.is_symlink()) and not ours(found):
            raise UsageError(f"{flag}{found} is there and {what}{fix}")


def expand_paths(paths: Sequence[Path], out: Path, suffixes: frozenset[str], *,
                 once_per_file: bool = False) -> list[tuple[Path, Path]]:
    """``(file, its output folder)`` for each path: a file as given, into ``out``; a folder's files with one of
    ``suffixes`` (searched through its subfolders, hidden ones left out, in name order), into the same
    subfolders of ``out`` (a link to nothing with one of them too, so that it fails with its own line, as it does
    named alone). A folder with none of them is kept as it is, to fail with its own line. The files a
    search passes over are said in one note line on stderr, except those of a kind mmtok reads or writes
    (media, code files). The same file named twice into the same output (``a.jpg ./a.jpg``, or once alone and
    once in its folder) is kept once, where it came first; with ``once_per_file``, also when named by a link
    or into another output folder (to read each file once). Each name left out is said on a note line.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.jpg").write_bytes(b"")
    >>> [f.name for f, _ in expand_paths([d, d / "a.jpg", d / ".." / d.name / "a.jpg"], Path("o"), frozenset({".jpg"}))]
    ['a.jpg']
    """
    pairs: list[tuple[Path, Path]] = []
    passed: list[Path] = []
    ends = tuple(suffixes)
    for path in paths:
        if not path.is_dir():
            pairs.append((path, out))
            continue
        wanted = []
        for f in sorted(path.rglob("*")):
            broken = f.is_symlink() and not f.exists()  # a link to nothing: kept, to fail on its own line
            if not (f.is_file() or broken) or any(part.startswith(".") for part in f.relative_to(path).parts):
                continue
            if f.name.lower().endswith(ends):
                wanted.append(f)
            elif f.suffix.lower() not in OWN_SUFFIXES:
                passed.append(f)
        pairs += [(f, out / f.parent.relative_to(path)) for f in wanted] or [(path, out)]
    if passed:
        hint = next((f"; {HINTS[f.suffix.lower()]}" for f in passed if f.suffix.lower() in HINTS), "")
        print(f"mmtok: note: skipped {counted(len(passed), 'file', 'files')} of a kind mmtok does not read (by the "
              f"extension): {few(map(str, passed))}{hint}", file=sys.stderr)
    return _once(pairs, once_per_file)


def few(names: Iterable[str], named: int = NAMED) -> str:
    """The first ``named`` of ``names``, then how many more.

    >>> few(["a.wav", "b.wav", "c.wav", "d.wav"]), few(["a.wav", "b.wav"], 5)
    ('a.wav, b.wav, c.wav and 1 more', 'a.wav, b.wav')
    """
    names = list(names)
    rest = len(names) - named
    return ", ".join(names[:named]) + (f" and {rest} more" if rest > 0 else "")


@contextlib.contextmanager
def silence_collected() -> Iterator[list[SilenceWarning]]:
    """Within: every :class:`~mmtok.audio.io.SilenceWarning` given in this thread or task (each time it is given,
    through :func:`~mmtok.audio.io.warn_silence`) goes into the list this yields instead of to the screen, for a
    run over many files to say them once. Nothing process-wide changes: not the warning filters, not
    ``warnings.showwarning``, so other threads' warnings, silence included, show as before, and two runs in two
    threads each collect their own.

    >>> with silence_collected() as found:
    ...     warn_silence(SilenceWarning("audio file a.wav is digital silence"))
    >>> [str(w) for w in found]
    ['audio file a.wav is digital silence']
    """
    found: list[SilenceWarning] = []
    token = SILENCE_SINK.set(found)
    try:
        yield found
    finally:
        SILENCE_SINK.reset(token)


def given_again(done: Iterable[tuple[Done, list[SilenceWarning]]]) -> Iterator[Done]:
    """Each item of ``done`` after the silence warnings that came with it (collected by :func:`silence_collected`
    in a worker process), given again in this one."""
    for item, silent in done:
        for warning in silent:
            warn_silence(warning)
        yield item


def _once(pairs: Sequence[tuple[Path, Path]], once_per_file: bool) -> list[tuple[Path, Path]]:
    """``pairs`` less those naming a file already there (by its real path) with the same output file (its name
    into the same folder), or with any output when ``once_per_file``; a note line on stderr names them."""
    first: dict[object, Path] = {}
    kept, again = [], []
    for path, out in pairs:
        where = os.path.realpath(path)  # not Path.resolve: a symlink loop fails on its own line, later
        key = where if once_per_file else (where, out / path.name)
        if key in first:
            again.append(f"{path} is {first[key]}")
        else:
            first[key] = path
            kept.append((path, out))
    if again:
        print(f"mmtok: note: {counted(len(again), 'file named twice is', 'files named twice are')} taken once: "
              f"{few(again)}", file=sys.stderr)
    return kept


class StopRun(UsageError):
    """A problem that concerns every file (a model that cannot be loaded): :func:`run_each` stops at it
    instead of reporting it once per file."""


def file_kinds(pairs: list[tuple[Path, Path]]) -> set[str]:
    """The models ``encode`` (and ``mmtok eval``) needs for these files: each file's kind by its extension, and the
    audio model for a video (its soundtrack). A file that is not media needs none: it fails on its own line."""
    kinds: set[str] = set()
    for path, _ in pairs:
        try:
            kind = media_kind(path)
        except UsageError:
            continue
        kinds |= {kind, "audio"} if kind == "video" else {kind}
    return kinds


def check_vocoder_flag(vocoder: str, name: str, cfg: object) -> None:
    """A :class:`StopRun` for ``--vocoder learned`` when the audio model ``name`` (its config ``cfg``) has no learned
    vocoder: every sound would fail alike, so the run stops before any work."""
    if vocoder == "learned" and getattr(cfg, "vocoder", None) is None:
        raise StopRun(f"--vocoder learned: the audio model {name} has no learned vocoder; use --vocoder auto or "
                      "griffin-lim")


def check_out_folder(out: Path) -> None:
    """A :class:`UsageError` before any work when ``out`` exists and is not a folder, or cannot be made or
    written to (a file on its way, a read-only folder): one line instead of one failure per file."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; nothing was written")
    there = out
    while not there.exists() and there != there.parent:  # the folder that would hold it (or it itself)
        there = there.parent
    if not there.is_dir():
        raise UsageError(f"--out {out} cannot be made: {there} is a file, not a folder; nothing was written")
    if read_only_folder(there) is not None:
        raise UsageError(f"--out {out} cannot be written: {there} is read-only to you; nothing was written")


def refuse_collisions(pairs: Sequence[tuple[Path, Path]], target: Callable[[Path, Path], Path]) -> None:
    """A :class:`UsageError` before any work when two inputs would write the same file (``target(path, out)``),
    naming both: the second would silently replace the first."""
    seen: dict[Path, Path] = {}
    for path, out in pairs:
        t = target(path, out)
        if t in seen and seen[t] != path:
            raise UsageError(f"{seen[t]} and {path} would both be written to {t}; give them different --out "
                             "folders or rename one; nothing was written")
        seen[t] = path


def run_each(pairs: Sequence[tuple[Path, Path]], one: Callable[[Path, Path], str], *, done: str = "written",
             progress: bool | None = None) -> int:
    """``one(path, out)`` for each pair, the line it returns printed; a failure is one error line on stderr
    (``mmtok: error: FILE: why``) and the rest go on, except a :class:`StopRun`, which stops the run. Returns
    2 when any failed (a last line says how many, and that the others were ``done``), 1 when a failure was
    not one mmtok knows (a bug: its type is on the line), else 0. A progress bar runs on stderr when it is a terminal
    (``progress=None``), always (True) or never (False). Stdout closed by its reader (output piped into e.g.
    ``head``) is no file's failure: the :class:`BrokenPipeError` of printing a line ends the run, the files after
    it untouched. SIGTERM stops the run as Ctrl-C does (:func:`~mmtok.core.run_lock.sigterm_interrupts`): the
    file being written is removed, the files written before it stay."""
    failed = unexpected = 0
    with sigterm_interrupts(), tqdm(pairs, unit="file", leave=False, disable=None if progress is None else not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for path, out in bar:
            bar.set_postfix_str(path.name, refresh=False)
            try:
                if path.is_dir():
                    raise UsageError(f"{path}: a folder with no file to read in it")
                line = one(path, out)
            except StopRun:
                raise
            except Exception as e:  # one file's failure, whatever it is, is that file's line
                failed += 1
                known = isinstance(e, (MmtokError, OSError))
                unexpected += not known
                text = " ".join(str(e).split()) if known else f"{type(e).__name__}: {' '.join(str(e).split())}"
                tqdm.write(f"mmtok: error: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr)
                continue
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()
    if failed:
        rest = f"; the others were {done}" if failed < len(pairs) else ""
        print(f"mmtok: {failed} of {len(pairs)} files failed{rest}", file=sys.stderr)
    return (1 if unexpected else 2) if failed else 0
