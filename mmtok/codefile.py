"""``mmtok encode`` and ``mmtok decode``: media files <-> code files, from the command line.

A code file (:mod:`mmtok.data.codes`) holds the codes and what made them; ``decode`` refuses
codes made by another model than the one given, naming both.

    mmtok encode photo.jpg speech.wav --out codes/         # codes/photo.jpg.npz, codes/speech.wav.npz
    mmtok decode codes/*.npz --out back/                   # back/photo.jpg.decoded.png, back/speech.wav.decoded.wav

A file that cannot be read or used is reported on its own line (``mmtok: error: FILE: why``)
and the others go on; the exit status is then 2, and every file already written stays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from mmtok._version import __version__
from mmtok.core.errors import MmtokError, UsageError
from mmtok.data.codes import CODES_SUFFIX, atomic_file, load_codes, save_codes
from mmtok.pretrained import load
from mmtok.stream.interleave import AUDIO_SUFFIXES, IMAGE_SUFFIXES

__all__ = ["decode_main", "encode_main"]

DECODED = ".decoded"  # photo.jpg.npz -> photo.jpg.decoded.png: never the name of the original


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    known = " ".join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))
    raise UsageError(f"{path}: not an image or a sound by its extension ({known})")


def _meta(tok: Any, kind: str, model: str) -> dict[str, Any]:
    prov = getattr(tok, "provenance", None) or {}
    meta = {"kind": kind, "model": model, "model_version": prov.get("model_version"), "fingerprint": tok.fingerprint,
            "codebook_size": int(tok.codebook_size), "mmtok_version": __version__}
    if kind == "audio":
        meta |= {"sample_rate": int(tok.sample_rate), "tokens_per_second": int(tok.tokens_per_second)}
    return meta


class _Models:
    """The tokenizers named on the command line, each loaded once, when first needed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.names = {"image": args.image, "audio": args.audio}
        self.loaded: dict[str, Any] = {}

    def __call__(self, kind: str) -> Any:
        if kind not in self.loaded:
            self.loaded[kind] = load(self.names[kind], kind=kind)
        return self.loaded[kind]


def _encode_one(path: Path, out: Path, models: _Models) -> str:
    kind = _kind(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    tok = models(kind)
    codes = tok.encode(path)
    meta = _meta(tok, kind, models.names[kind]) | {"source": path.name}
    if kind == "audio":
        meta["seconds"] = round(codes.numel() / tok.tokens_per_second, 3)
        what = f"{codes.numel()} audio tokens ({meta['seconds']:g} s)"
    else:
        what = f"{codes.shape[0]}×{codes.shape[1]} image tokens"
    target = save_codes(out / (path.name + CODES_SUFFIX), codes.cpu().numpy(), meta)
    return f"{path} -> {target}: {what}, codebook {tok.codebook_size}"


def _decode_one(path: Path, out: Path, models: _Models, vocoder: str) -> str:
    codes, meta = load_codes(path)
    kind = meta["kind"]
    tok = models(kind)
    if meta.get("fingerprint") != tok.fingerprint:
        made = meta.get("model_version") or meta.get("model") or "another model"
        given = (getattr(tok, "provenance", None) or {}).get("model_version") or models.names[kind]
        raise UsageError(
            f"{path}: made by {made} (fingerprint {meta.get('fingerprint')}), but the {kind} model given is {given} "
            f"(fingerprint {tok.fingerprint}); decode with --{kind} naming the model that made it")
    stem = path.name.removesuffix(CODES_SUFFIX)
    if kind == "image":
        img = tok.decode(torch.from_numpy(codes))  # (3, H, W) in [0, 1]
        target = _save_image(out / f"{stem}{DECODED}.png", img)
        return f"{path} -> {target}: {img.shape[-1]}×{img.shape[-2]} image"
    wave = tok.decode(torch.from_numpy(codes), vocoder=vocoder)
    target = _save_wav(out / f"{stem}{DECODED}.wav", wave, int(tok.sample_rate))
    return f"{path} -> {target}: {wave.numel() / tok.sample_rate:g} s at {tok.sample_rate} Hz"


def _save_image(path: Path, img: torch.Tensor) -> Path:
    from PIL import Image

    pixels = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return atomic_file(path, lambda f: Image.fromarray(pixels).save(f, format="PNG"))


def _save_wav(path: Path, wave: torch.Tensor, rate: int) -> Path:
    import soundfile as sf

    samples = wave.detach().cpu().float().numpy()  # 32-bit float WAV: nothing clipped
    return atomic_file(path, lambda f: sf.write(f, samples, rate, format="WAV", subtype="FLOAT"))


def _run(paths: list[Path], one: Any) -> int:
    """``one(path)`` for each path, its line printed; a failure is one error line and the rest go on."""
    failed = 0
    for path in paths:
        try:
            print(one(path), flush=True)
        except (MmtokError, OSError) as e:
            failed += 1
            text = " ".join(str(e).split())
            print(f"mmtok: error: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr, flush=True)
    if failed:
        print(f"mmtok: {failed} of {len(paths)} files failed; the others were written", file=sys.stderr)
    return 2 if failed else 0


def add_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the files written")
    parser.add_argument("--image", default="image", metavar="MODEL",
                        help="image tokenizer: a shipped name or a checkpoint folder (default: image)")
    parser.add_argument("--audio", default="audio", metavar="MODEL",
                        help="audio tokenizer: a shipped name or a checkpoint folder (default: audio)")


def encode_main(args: argparse.Namespace) -> int:
    """``mmtok encode FILE... --out DIR``: each image or sound -> ``DIR/NAME.npz``."""
    models = _Models(args)
    return _run(args.files, lambda p: _encode_one(p, args.out, models))


def decode_main(args: argparse.Namespace) -> int:
    """``mmtok decode CODES... --out DIR``: each code file -> ``DIR/NAME.decoded.png`` or ``.wav``."""
    models = _Models(args)
    return _run(args.files, lambda p: _decode_one(p, args.out, models, args.vocoder))
