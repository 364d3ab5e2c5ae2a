"""``mmtok encode`` and ``mmtok decode``: media files <-> code files, from the command line.

A code file (:mod:`mmtok.data.codes`) holds the codes and what made them; ``decode`` refuses
codes made by another model than the one given, naming both.

    mmtok encode photo.jpg speech.wav --out codes/         # codes/photo.jpg.npz, codes/speech.wav.npz
    mmtok decode codes/*.npz --out back/                   # back/photo.jpg.decoded.png, back/speech.wav.decoded.wav
    mmtok encode media/ --out codes/                       # every medium under media/, in the same subfolders

A file that cannot be read or used is reported on its own line (``mmtok: error: FILE: why``)
and the others go on; the exit status is then 2, and every file already written stays. The model of
every kind the files need is loaded first: one that cannot load stops the run before any file is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok._version import __version__
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.command_output import counted
from mmtok.core.errors import MmtokError, UsageError
from mmtok.core.format_version import NewerFileError
from mmtok.core.paths import no_such_file
from mmtok.data.codes import CODES_SUFFIX, atomic_file, load_codes, save_codes
from mmtok.data.media_files import (
    MEDIA_SUFFIXES,
    StopRun,
    check_out_folder,
    check_vocoder_flag,
    expand_paths,
    file_kinds,
    file_media_kind,
    marked,
    refuse_collisions,
    refuse_foreign,
    run_each,
    write_marked_image,
    write_marked_sound,
)
from mmtok.pretrained import load_tokenizer, model_version, rate_keywords, vocoder_keywords
from mmtok.stream.vocab import tokenizer_fingerprint

__all__ = ["decode_main", "encode_main"]

DECODED = ".decoded"  # photo.jpg.npz -> photo.jpg.decoded.png: never the name of the original
DECODED_SUFFIX = {"image": ".png", "audio": ".wav", "video": ".mp4"}
MARK = "mmtok decode"  # in every file decode writes (PNG Software text, WAV software string, MP4 comment tag)


def _meta(tok: Any, kind: str, model: str, fingerprint: str) -> dict[str, Any]:
    """What a code file records of the model ``tok`` that made it (``fingerprint``: :meth:`_Models.fingerprint`)."""
    meta = {"kind": kind, "model": model, "model_version": model_version(tok), "fingerprint": fingerprint,
            "codebook_size": int(tok.codebook_size), "mmtok_version": __version__}
    if kind == "audio":  # a rate such as 12.5 tokens per second kept whole: the soundtrack's length is checked by it
        rate = float(tok.tokens_per_second)
        meta |= {"sample_rate": int(tok.sample_rate), "tokens_per_second": int(rate) if rate.is_integer() else rate}
    if kind == "video":
        meta["fps"] = float(tok.fps)
    return meta


class _Models:
    """The tokenizers named on the command line, each loaded once: every kind the inputs need before any file
    (:meth:`load_all`), so that a model that cannot load stops the run before anything is written. Each one's
    fingerprint (a hash of all its weights) is computed once too (:meth:`fingerprint`), not once per file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.names = {"image": args.image, "audio": args.audio, "video": args.video}
        self.loaded: dict[str, Any] = {}
        self.fingerprints: dict[str, str] = {}

    def __call__(self, kind: str) -> Any:
        if kind not in self.loaded:
            try:
                self.loaded[kind] = load_tokenizer(self.names[kind], kind=kind)
            except (MmtokError, OSError) as e:  # every file of this kind would fail the same way
                raise StopRun(f"--{kind} {self.names[kind]}: {' '.join(str(e).split())}") from e
        return self.loaded[kind]

    def fingerprint(self, kind: str) -> str:
        """The fingerprint of the model of ``kind`` (loading it if need be; :func:`~mmtok.stream.vocab.
        tokenizer_fingerprint`: its own, or a hash of a module's state), computed on first use and kept. A tokenizer
        with neither stops the run: decode could not tell its codes from another's."""
        if kind not in self.fingerprints:
            tok = self(kind)
            try:
                self.fingerprints[kind] = tokenizer_fingerprint(tok)
            except MmtokError as e:
                raise StopRun(f"--{kind} {self.names[kind]} gives a {type(tok).__name__}, which has no fingerprint: "
                              "give it a `fingerprint` string that changes whenever its codes would "
                              "(mmtok.core.protocol), so that a code file names the model that made it") from e
        return self.fingerprints[kind]

    def load_all(self, kinds: set[str]) -> None:
        """Load the model of each of ``kinds`` now, and its fingerprint (a :class:`StopRun` for the first that cannot
        load or has none)."""
        for kind in self.names:
            if kind in kinds:
                self.fingerprint(kind)


def _code_head(path: Path) -> tuple[str, bool] | None:
    """A code file's kind and whether it holds a soundtrack, read once for what ``decode`` checks before any work
    (:func:`_code_kinds`, :func:`_decoded_target`); None when it is not a file or cannot be read (it then fails on
    its own line)."""
    if not path.is_file():
        return None
    try:
        _, meta, audio_codes = load_codes(path)
    except (UsageError, OSError):
        return None
    return meta["kind"], audio_codes is not None


def _code_kinds(heads: dict[Path, tuple[str, bool] | None]) -> set[str]:
    """The models ``decode`` needs for these code files (:func:`_code_head` of each): each one's kind, and the audio
    model for a video with a soundtrack. A code file that cannot be read needs none: it fails on its own line."""
    kinds: set[str] = set()
    for head in heads.values():
        if head is not None:
            kinds |= {head[0], "audio"} if head[1] else {head[0]}
    return kinds


def _encode_one(path: Path, out: Path, models: _Models) -> str:
    kind = file_media_kind(path)
    if not path.is_file():
        raise UsageError(no_such_file(path))
    tok = models(kind)
    sound = None
    if kind == "video":  # its soundtrack first: one too long is refused before any frame is encoded
        from mmtok.video.read import read_audio

        sound = read_audio(path, int(models("audio").sample_rate))
    codes = tok.encode(path)
    meta = _meta(tok, kind, models.names[kind], models.fingerprint(kind)) | {"source": path.name}
    audio_codes = None
    if kind == "audio":
        meta["seconds"] = round(codes.numel() / tok.tokens_per_second, 3)
        what = f"{codes.numel()} audio tokens ({meta['seconds']:g} s)"
    elif kind == "image":
        what = f"{codes.shape[0]} rows × {codes.shape[1]} columns of image tokens"
    else:
        grid = f"{codes.shape[1]} rows × {codes.shape[2]} columns"
        what = f"{counted(codes.shape[0], 'frame')} of {grid} of tokens at {tok.fps:g} fps"
        sound_tok = models("audio")
        if sound is not None and sound[0].numel():
            audio_codes = sound_tok.encode(sound[0], **rate_keywords(sound_tok, sound[1]))
            seconds = round(audio_codes.numel() / sound_tok.tokens_per_second, 3)
            sound_meta = _meta(sound_tok, "audio", models.names["audio"], models.fingerprint("audio"))
            meta["audio"] = sound_meta | {"seconds": seconds}
            what += f" and {audio_codes.numel()} audio tokens ({seconds:g} s)"
            audio_codes = audio_codes.cpu().numpy()
    target = save_codes(out / (path.name + CODES_SUFFIX), codes.cpu().numpy(), meta, audio_codes)
    return f"{path} -> {target}: {what}, codebook {tok.codebook_size}"


def _tensor(codes: np.ndarray) -> torch.Tensor:
    """Codes from a code file as a tensor: integers of any width and byte order (a big-endian file's too)."""
    return torch.from_numpy(codes.astype(codes.dtype.newbyteorder("="), copy=False))


def _is_code_file(path: Path) -> bool:
    """Whether ``path`` is a code file (:func:`~mmtok.data.codes.load_codes`: its meta names a kind), one whose video
    meta decoding refuses among them, or an empty file left in its place: encoding again
    replaces it."""
    if not path.is_file():
        return False
    if path.stat().st_size == 0:  # what a write or copy that never finished leaves: nothing in it to lose
        return True
    try:
        load_codes(path, check_video=False)
    except NewerFileError:  # a newer mmtok's code file: kept, and said to be one, not "not a code file"
        raise
    except (UsageError, OSError):
        return False
    return True


def _model_folder(name: str) -> Path | None:
    """The checkpoint folder the model ``name`` (a shipped name or a folder, as given on a command line) is in
    now; None when there is none (a shipped ``"video"``, a folder since removed)."""
    try:
        return resolve_checkpoint(name)
    except MmtokError:
        return None


def _same_model(made_by: Any, given: str) -> bool:
    """Whether the model a code file names (``made_by``: the name or folder ``encode`` was given) is the model
    ``given`` now: the same name, or the same checkpoint folder."""
    if made_by == given:
        return True
    then, now = (_model_folder(made_by) if isinstance(made_by, str) else None), _model_folder(given)
    return then is not None and now is not None and then.resolve() == now.resolve()


def _check_model(path: Path, meta: dict[str, Any], models: _Models, kind: str) -> None:
    """Refuse codes whose vocabulary fingerprint is not that of ``models``' model of ``kind``: the model given,
    changed since the codes were made (the one ``encode`` was given, same name or folder: retrained there), or
    another model, naming both."""
    fingerprint, was, given = models.fingerprint(kind), meta.get("fingerprint"), models.names[kind]
    if was == fingerprint:
        return
    if not isinstance(was, str):
        raise UsageError(f"{path}: its meta records no fingerprint of the {kind} model that made it ({was!r}), so "
                         f"decode cannot tell whether the one given ({given}) did; encode "
                         f"{meta.get('source') or 'the original'} again (mmtok encode records it)")
    made_by = meta.get("model")
    if _same_model(made_by, given):
        then, now = meta.get("model_version"), model_version(models(kind))
        versions = f"{then} then, {now} now; " if then and now and then != now else ""
        raise UsageError(
            f"{path}: the {kind} model at {_model_folder(given) or given} changed since these codes were made "
            f"({versions}fingerprint {was} in the codes, {fingerprint} now); decode them with the model that made "
            f"them, or encode {meta.get('source') or 'the original'} again")
    made = meta.get("model_version") or made_by or "another model"
    now = model_version(models(kind)) or given
    if made == now:  # one version name for two sets of weights: tell them apart by where they are
        made, now = made_by or "another model", given
    raise UsageError(
        f"{path}: made by {made} (fingerprint {was}), but the {kind} model given is {now} (fingerprint "
        f"{fingerprint}); decode with --{kind} naming the model that made it")


def _decode_one(path: Path, out: Path, models: _Models, vocoder: str) -> str:
    codes, meta, audio_codes = load_codes(path)
    kind = meta["kind"]
    tok = models(kind)
    _check_model(path, meta, models, kind)
    stem = path.name.removesuffix(CODES_SUFFIX)
    if kind == "image":
        img = tok.decode(_tensor(codes))  # (3, H, W) in [0, 1]
        target = write_marked_image(out / f"{stem}{DECODED}{DECODED_SUFFIX[kind]}", img, MARK)
        return f"{path} -> {target}: {img.shape[-1]}×{img.shape[-2]} image (width × height in pixels)"
    if kind == "audio":
        wave = tok.decode(_tensor(codes), **vocoder_keywords(tok, vocoder, models.names[kind]))
        target = write_marked_sound(out / f"{stem}{DECODED}{DECODED_SUFFIX[kind]}", wave, int(tok.sample_rate), MARK,
                                    subtype="FLOAT", fmt="WAV")  # 32-bit float: nothing clipped
        return f"{path} -> {target}: {wave.numel() / tok.sample_rate:g} s at {tok.sample_rate} Hz"
    from mmtok.video.write import write_video

    chunks = getattr(tok, "decode_chunks", None)  # decoded as they are written: the clip is never held whole
    frames = (chunks or tok.decode)(_tensor(codes))  # chunks (n, 3, H, W), or (T, 3, H, W)
    wave, rate, what = None, None, ""
    if audio_codes is not None:
        sound_tok = models("audio")
        _check_model(path, meta.get("audio") or {}, models, "audio")
        wave = sound_tok.decode(_tensor(audio_codes), **vocoder_keywords(sound_tok, vocoder, models.names["audio"]))
        rate = int(sound_tok.sample_rate)
        what = f" with {wave.numel() / rate:g} s of sound"
    fps = float(meta["fps"])  # a number above 0: load_codes checked it
    target = atomic_file(out / f"{stem}{DECODED}{DECODED_SUFFIX[kind]}",
                         lambda f: write_video(f, frames, fps=fps, audio=wave, sample_rate=rate,
                                               metadata={"comment": MARK}))
    return f"{path} -> {target}: {counted(len(codes), 'frame')} at {fps:g} fps{what}"


def _decoded_target(path: Path, out: Path, head: tuple[str, bool] | None) -> Path | None:
    """The file ``decode`` writes for the code file ``path`` (its kind from ``head``, :func:`_code_head`); None when
    the code file cannot be read (it then fails on its own line)."""
    if head is None:
        return None
    return out / f"{path.name.removesuffix(CODES_SUFFIX)}{DECODED}{DECODED_SUFFIX.get(head[0], '')}"


def _is_decoded(path: Path) -> bool:
    """Whether ``path`` is a file ``decode`` wrote (:func:`~mmtok.data.media_files.refuse_foreign` replaces only
    those): it carries :data:`MARK` (:func:`~mmtok.data.media_files.marked`)."""
    return marked(path, MARK)


def encode_main(args: argparse.Namespace) -> int:
    """``mmtok encode FILE... --out DIR``: each image, sound or video -> ``DIR/FILE.npz``."""
    models = _Models(args)
    check_out_folder(args.out)
    pairs = expand_paths(args.files, args.out, MEDIA_SUFFIXES)
    refuse_collisions(pairs, lambda path, out: out / (path.name + CODES_SUFFIX))
    refuse_foreign(pairs, lambda path, out: out / (path.name + CODES_SUFFIX), _is_code_file,
                   "is not a code file from 'mmtok encode'")
    models.load_all(file_kinds(pairs))
    return run_each(pairs, lambda path, out: _encode_one(path, out, models))


def decode_main(args: argparse.Namespace) -> int:
    """``mmtok decode CODES... --out DIR``: each code file -> ``DIR/FILE.decoded.png``, ``.wav`` or ``.mp4``."""
    models = _Models(args)
    check_out_folder(args.out)
    pairs = expand_paths(args.files, args.out, frozenset({CODES_SUFFIX}))
    refuse_collisions(pairs, lambda path, out: out / f"{path.name.removesuffix(CODES_SUFFIX)}{DECODED}")
    heads = {path: _code_head(path) for path, _ in pairs}  # each file read once here, once more to decode it
    refuse_foreign(pairs, lambda path, out: _decoded_target(path, out, heads[path]), _is_decoded,
                   "was not written by 'mmtok decode'")
    models.load_all(_code_kinds(heads))
    if "audio" in models.loaded:  # a tokenizer of one's own (package.module:callable) may have no cfg and no vocoder
        vocoder_keywords(models("audio"), args.vocoder, models.names["audio"])
        check_vocoder_flag(args.vocoder, models.names["audio"], getattr(models("audio"), "cfg", None))
    return run_each(pairs, lambda path, out: _decode_one(path, out, models, args.vocoder))
