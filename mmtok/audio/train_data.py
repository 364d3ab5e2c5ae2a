"""What :mod:`mmtok.audio.train` trains on: the clips of a folder, of a corpus manifest or of an audio
cache, the held-aside validation clips, seeded synthetic clips, and random token-aligned log-mel crops.

Three kinds of ``--data``:

- a folder of audio files (``--make-data`` builds the espeak-ng/pygame/synthetic corpus in it
  first): every file is a clip, ``--val-fraction`` of them held aside; a folder that holds a corpus
  manifest (:func:`~mmtok.core.corpus_manifest.check_folder`) is the manifest's to split, not a folder of clips;
- a corpus manifest (``manifest.jsonl``, as ``benchmarks/fetch_corpus.py`` writes it; :func:`manifest_material`):
  the files of its ``--split`` (default ``train``) are trained on, codebook groups by source and speaker from
  its rows, and ``--val-clips`` of its ``validation`` split validated on;
- an audio cache of a real corpus (:func:`is_cache`; ``python -m mmtok.audio.vocoder_train
  --corpus C --cache DIR`` builds it): its ``train`` split is trained on, crops drawn by source and
  speaker (:func:`~mmtok.audio.vocoder_data.sampling_weights`), seeded synthetic clips mixed in at
  ``--synthetic-share``, and ``--val-clips`` of its ``validation`` split validated on. A training clip
  of a cache stays in its memmap (:class:`CacheClip`) until its log-mel is computed.

What a run trains on, by content, for ``--resume`` to check: :func:`folder_digest` or
:func:`~mmtok.audio.vocoder_data.cache_digest`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmtok.audio.codebook import speaker_groups
from mmtok.audio.corpus import build_corpus
from mmtok.audio.corpus import synthetic_clips as _synthetic_arrays
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.audio.vocoder_data import (
    CACHE_FORMAT,
    AudioCache,
    Clip,
    sampling_weights,
)
from mmtok.core.corpus_manifest import (
    check_folder,
    check_split,
    is_manifest,
    split_rows,
)
from mmtok.core.errors import AudioError, MissingFileError, UsageError
from mmtok.core.run_folder import content_digest, holds_train_state
from mmtok.core.suffixes import AUDIO_SUFFIXES

__all__ = [
    "CacheClip", "attenuate_crops", "cache_material", "check_data", "clip_waveform", "find_audio", "folder_digest",
    "is_cache", "manifest_material", "padding_note", "random_feature_crops", "read_material", "split_validation",
    "synthetic_clips", "training_files",
]
VALIDATION_SPLIT = "validation"  # the split of a manifest or a cache that a run validates on


def find_audio(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (recursively), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingFileError(f"--data {str(root)!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise MissingFileError(f"--data {str(root)!r} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def random_feature_crops(feats: Sequence[torch.Tensor], n: int, tokens: int, *, fpt: int, ctx: int,
                         floor: float, generator: torch.Generator,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` token-aligned crops ``[n, M, fpt*tokens + 2*ctx]`` of log-mel features with context
    (one ``[M, F]`` tensor per clip, clips picked in proportion to ``weights``, by default to their
    length); a crop past a clip's end is filled with ``floor``."""
    width = fpt * tokens + 2 * ctx
    if weights is None:
        weights = torch.tensor([f.shape[-1] for f in feats], dtype=torch.float)
    pick = torch.multinomial(weights, n, replacement=True, generator=generator)
    out = torch.full((n, feats[0].shape[0], width), floor)
    for row, i in enumerate(pick.tolist()):
        f = feats[i]
        slots = max(1, (f.shape[-1] - 2 * ctx) // fpt - tokens + 1)
        start = fpt * int(torch.randint(0, slots, (1,), generator=generator))
        piece = f[:, start : start + width]
        out[row, :, : piece.shape[-1]] = piece
    return out


def padding_note(lengths: Sequence[int], width: int, *, weights: Sequence[float] | np.ndarray | None = None,
                 who: str, piece: str, fix: str) -> str | None:
    """One stderr line when some training clips (``lengths``, in the unit of ``width``) are shorter than one
    training ``piece`` of ``width``: how many, and the share of what is trained on that is silence past their
    ends (clips drawn in proportion to ``weights``, by default to their length); None when every clip fills one.

    >>> padding_note([10, 30], 20, who="train", piece="crop (0.2 s)", fix="--crop-tokens 5 fits them")
    'train: 1 of 2 training clips is shorter than one crop (0.2 s), and what a crop takes past its end is silence: 12% of what is trained on; --crop-tokens 5 fits them, or give longer clips'
    """
    n = np.asarray(lengths, dtype=np.float64)
    short = int((n < width).sum())
    if not short:
        return None
    w = n if weights is None else np.asarray(weights, dtype=np.float64)[: n.size]
    share = float((w * np.clip(width - n, 0, None)).sum() / width / max(float(w.sum()), 1e-12))
    verb = "is" if short == 1 else "are"
    return (f"{who}: {short} of {n.size} training clips {verb} shorter than one {piece}, and what a {piece.split()[0]} "
            f"takes past its end is silence: {share:.0%} of what is trained on; {fix}, or give longer clips")


def attenuate_crops(mel: torch.Tensor, *, gain_db: float, prob: float, floor: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Each crop of ``mel`` (``[n, M, F]`` log-mel power, floored at ``floor``), with probability
    ``prob``, as it would be had its audio been U(0, ``gain_db``) dB quieter: the log-mel shifts down
    by that many dB and is floored again. This is exact, since the features are ``log(max(power,
    floor))``: what was under the floor stays under it. ``gain_db`` 0 or ``prob`` 0 return ``mel``
    and draw nothing from ``generator``."""
    if gain_db <= 0 or prob <= 0:
        return mel
    n = mel.shape[0]
    db = torch.rand(n, generator=generator) * gain_db
    on = (torch.rand(n, generator=generator) < prob).float()
    shift = -(db * on) * (np.log(10.0) / 10.0)  # power dB -> natural log
    return (mel + shift.to(mel.dtype).view(n, *([1] * (mel.dim() - 1)))).clamp_min(floor)


def _pick_validation(n: int, clips: int, seed: int) -> list[int]:
    """``clips`` of ``n`` validation clips (all if fewer), seeded, in their order."""
    return sorted(int(i) for i in np.random.default_rng(seed + 4321).permutation(n)[:clips])


def _group_index(labels: Sequence[str]) -> tuple[list[int], int]:
    """The codebook group of each clip (one per distinct label, in order of first sight) and how many there are."""
    index: dict[str, int] = {}
    return [index.setdefault(label, len(index)) for label in labels], len(index)


def manifest_material(args: argparse.Namespace) -> tuple[list[Path], list[Path], list[int], str, str]:
    """From a corpus manifest: the files of ``--split`` (default ``train``), ``--val-clips`` files of its
    ``validation`` split (seeded; none when that is the split trained on), the codebook group of every training
    file (``--kmeans-groups auto``: source and speaker from its row, as for a cache), what a group is, and what is
    validated on (for the run's log and summary). Rows of those splits whose file is not there are refused
    first, all at once, by line (:func:`~mmtok.core.corpus_manifest.check_listed`). Its ``test`` split is never
    read."""
    manifest = Path(args.data)
    rows = split_rows(manifest, args.split, suffixes=AUDIO_SUFFIXES, media="audio", error=AudioError, present=True)
    files = [f for f, _ in rows]
    held = [] if args.split == VALIDATION_SPLIT else [
        f for f, _ in split_rows(manifest, VALIDATION_SPLIT, suffixes=AUDIO_SUFFIXES, media="audio",
                                 error=AudioError, required=False, present=True)]
    val = [held[i] for i in _pick_validation(len(held), args.val_clips, args.seed)]
    val_note = (f"validation: {len(val)} of the {len(held)} files of split {VALIDATION_SPLIT!r} of {manifest} "
                f"(seeded, --val-clips {args.val_clips})" if held else
                f"validation: none ({manifest} lists no audio files of split {VALIDATION_SPLIT!r} apart from those "
                "trained on)")
    if args.kmeans_groups != "auto":
        groups, note = speaker_groups(files, args.kmeans_groups)
        return files, val, groups, note, val_note
    groups, n = _group_index([f"{row.get('source')}/{row.get('group')}" for _, row in rows])
    return files, val, groups, f"source/group from the rows of {manifest}: {n} groups over {len(files)} files", val_note


def check_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--data`` and ``--split`` refused in one line (exit 2) before any work: ``--split`` but for a manifest,
    ``--make-data`` or ``--val-fraction`` with one (its validation split is validated on), and a folder that holds
    a corpus manifest (:func:`~mmtok.core.corpus_manifest.check_folder`), whose held-out splits it would train on."""
    check_split(parser, args.data, args.split, media="audio files")
    if is_manifest(args.data):
        if args.make_data:
            parser.error(f"--make-data builds a corpus in a folder; --data {args.data} is a manifest: "
                         "leave --make-data out")
        if args.val_fraction:
            parser.error(f"--val-fraction holds clips of a folder aside; --data {args.data} is a manifest, whose "
                         "validation split is validated on (--val-clips): leave --val-fraction out")
        return
    if not is_cache(args.data):
        check_folder(parser, args.data, resuming=args.resume and holds_train_state(args.out))


def split_validation(files: Sequence[Path], fraction: float, *, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold aside a random ``fraction`` of ``files`` (never ``pygame-*`` ones: too few) -> ``(train, validation)``."""
    files = list(files)
    if fraction <= 0:
        return files, []
    pool = [i for i, f in enumerate(files) if not f.name.startswith("pygame")]
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 12345)).tolist()
    val = {pool[j] for j in order[: round(fraction * len(files))]}
    return [f for i, f in enumerate(files) if i not in val], [f for i, f in enumerate(files) if i in val]


def training_files(args: argparse.Namespace) -> tuple[list[Path], list[Path], list[int], str]:
    """``(train files, validation files, codebook group of each train file, what a group is)``;
    builds the corpus first with ``--make-data``. A bad ``--kmeans-groups`` fails here, early."""
    data = Path(args.data)
    if args.make_data and not (data / "manifest.json").is_file():
        build_corpus(data, seed=args.seed, progress=not args.no_progress)
    found = find_audio(data / "train" if (data / "train").is_dir() else data)
    files, val_files = split_validation(found, args.val_fraction, seed=args.seed)
    if not files:
        raise UsageError(f"--val-fraction {args.val_fraction:g} leaves no training clips of {len(found)} files "
                         f"in --data {data}: give a smaller --val-fraction")
    groups, note = speaker_groups(files, args.kmeans_groups)
    return files, val_files, groups, note


def folder_digest(train: Sequence[Path], validation: Sequence[Path]) -> str:
    """What a run on a folder trains and validates on, by content
    (:func:`~mmtok.core.run_folder.content_digest`): each file's split, name and bytes, in order."""
    return content_digest(((split, f.name), f.read_bytes())
                          for split, files in (("train", train), ("validation", validation)) for f in files)


@dataclass(frozen=True)
class CacheClip:
    """One training clip of an audio cache, read from the cache's memmap only when it is used."""

    cache: AudioCache
    clip: Clip

    def waveform(self) -> torch.Tensor:
        """Its float32 samples ``[S]`` (:meth:`~mmtok.audio.vocoder_data.AudioCache.read`)."""
        return torch.from_numpy(self.cache.read(self.clip))


def clip_waveform(source: Path | torch.Tensor | CacheClip, sample_rate: int) -> torch.Tensor:
    """A training clip's mono waveform at ``sample_rate``: a file read (and resampled), a cache's clip read from its
    memmap, or a waveform as it is (a synthetic clip, made at that rate)."""
    if isinstance(source, CacheClip):
        return source.waveform()
    if isinstance(source, torch.Tensor):
        return source
    return load_audio(source, target_rate=sample_rate)


def read_material(sources: Sequence[Path | torch.Tensor | CacheClip], val_clips: Sequence[Path | torch.Tensor],
                  features: Callable[[torch.Tensor], torch.Tensor], sample_rate: int, *,
                  progress: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(features of each training clip's waveform, each validation clip's waveform)``, all read before the first
    step, so that a file held aside for validation cannot fail the run after its last step; every file that cannot
    be read, training or validation, is named in one :class:`~mmtok.core.errors.AudioError`."""
    from tqdm import tqdm

    feats: list[torch.Tensor] = []
    bad: list[str] = []
    for w in tqdm(sources, desc="log-mel", disable=not progress or len(sources) < 200):
        try:
            feats.append(features(clip_waveform(w, sample_rate)))
        except AudioError as e:
            bad.append(str(e))
    val: list[torch.Tensor] = []
    for f in val_clips:
        try:
            val.append(clip_waveform(f, sample_rate))
        except AudioError as e:
            bad.append(f"{e} (a validation clip)")
    if bad:
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise AudioError(f"{len(bad)} of {len(sources) + len(val_clips)} audio files of --data cannot be used: "
                         f"{'; '.join(bad[:3])}{more}; remove or convert them, then run the command again")
    return feats, val


def is_cache(folder: str | Path) -> bool:
    """Whether ``folder`` is a built audio cache (``python -m mmtok.audio.vocoder_train --corpus``
    writes one: ``index.json`` with ``SPLIT.int16`` and ``SPLIT.jsonl``)."""
    index = Path(folder) / "index.json"
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("format") == CACHE_FORMAT
    except ValueError:
        return False


def synthetic_clips(n: int, *, seed: int, sample_rate: int = SAMPLE_RATE, tones: float = 0.0) -> list[torch.Tensor]:
    """``n`` seeded :func:`~mmtok.audio.corpus.synthetic_clips` waveforms of 1-4 s, as tensors."""
    return [torch.from_numpy(x) for x in _synthetic_arrays(n, seed=seed, sample_rate=sample_rate, tones=tones)]


def cache_material(args: argparse.Namespace, *, sample_rate: int = SAMPLE_RATE,
                   ) -> tuple[list[CacheClip | torch.Tensor], list[torch.Tensor], list[str], list[int], str,
                              torch.Tensor]:
    """From a cache (:func:`is_cache`): the ``train`` split's clips (:class:`CacheClip`, read when used) and the
    ``--synthetic`` waveforms (made at ``sample_rate``, the model's), ``--val-clips`` waveforms of its
    ``validation`` split (seeded, never trained on), their corpus paths, the codebook group of every training
    clip (source and speaker or album from the manifest), what a group is, and the crop weights
    (:func:`~mmtok.audio.vocoder_data.sampling_weights`: source ∝ √hours, group ∝ √hours, clip ∝ length). The
    ``test`` split is not in a cache."""
    train = AudioCache(args.data, "train")
    waves: list[CacheClip | torch.Tensor] = [CacheClip(train, c) for c in train.clips]
    groups, n_groups = _group_index([f"{c.source}/{c.group}" for c in train.clips])
    note = f"source/group from the cache's manifest rows: {n_groups} groups over {len(waves)} clips"
    weights = torch.from_numpy(sampling_weights(train.clips)).float()
    if args.synthetic:
        synth = synthetic_clips(args.synthetic, seed=args.seed, sample_rate=sample_rate, tones=args.synthetic_tones)
        waves += synth
        groups += list(range(n_groups, n_groups + len(synth)))  # each its own group, as in the built corpus
        share = torch.full((len(synth),), args.synthetic_share / (1 - args.synthetic_share) * float(weights.sum()) / len(synth))
        weights = torch.cat([weights, share])
        note += f", plus {len(synth)} synthetic clips ({args.synthetic_share:.0%} of the crops), each its own group"
        if args.synthetic_tones:
            note += f" ({args.synthetic_tones:.0%} of them steady tones)"
    val = AudioCache(args.data, VALIDATION_SPLIT)
    chosen = [val.clips[i] for i in _pick_validation(len(val.clips), args.val_clips, args.seed)]
    return waves, [torch.from_numpy(val.read(c)) for c in chosen], [c.path for c in chosen], groups, note, weights
