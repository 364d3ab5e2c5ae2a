"""Train an :class:`~mmtok.audio.AudioTokenizer`: ``mmtok train-tokenizer audio --data DIR --out DIR``.

``--make-data`` first builds a corpus in DIR from audio made here: speech from
``espeak-ng`` (many languages, voice variants, speeds and pitches), the example
sounds shipped in the ``pygame`` package, and synthetic tones, chirps and noise.
Part of it goes to ``DIR/heldout`` and is never read by training.

With the default ``slice`` encoder the codebook is group-balanced k-means (Lloyd, then
``--kmeans-balance`` rounds that retire codes serving fewer than ``--kmeans-min-groups``
speakers or recordings and split broad clusters instead, with Lloyd steps in which every
(speaker, code) pair weighs the same), and only the decoder is trained.
``--val-fraction`` holds some training clips aside from both; their codebook usage and
reconstruction go to ``summary.json``.

Training takes random token-aligned crops of log-mel (with the encoder's
context), L1 on normalized log-mel plus the VQ commitment loss, EMA codebook with
k-means init and dead-code restarts, AdamW with warmup and cosine decay, a
progress bar, atomic resumable checkpoints every ``--save-every`` steps, and two
pictures: original vs reconstructed mel and the codebook-usage histogram.

Output folder layout::

    OUT/model/          the trained tokenizer: config.json, model.safetensors, README.md (mmtok.load)
    OUT/train-state/    resumable state (weights + optimizer + RNG), read by --resume
    OUT/mel.png, OUT/codebook-usage.png, OUT/summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from mmtok.audio import AudioError, AudioTokenizer, AudioTokenizerConfig, load_audio
from mmtok.pretrained import save
from mmtok.quantize import nearest_code
from mmtok.trainstate import load_train_state, pick_device, save_train_state

__all__ = [
    "balance_codes", "build_corpus", "clip_support", "find_audio", "fit_codebook", "lloyd", "main",
    "pair_weights", "random_crops", "speaker_groups", "split_validation", "synthetic_clip", "validate",
    "weighted_lloyd",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
STATE_DIR = "train-state"
MODEL_DIR = "model"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "The rainbow is a division of white light into many beautiful colors.",
    "A large size in stockings is hard to sell.", "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.", "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.", "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.", "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.", "Numbers one two three four five six seven eight nine ten.",
    "Tomorrow will be cloudy with a chance of rain in the afternoon.",
    "Do you know the way to the railway station?", "I would like a cup of coffee and a glass of water.",
    "The meeting starts at half past nine on Monday morning.", "Turn left at the second traffic light.",
    "Music is the universal language of mankind.", "Where did you put the keys to the red car?",
    "Seventeen thousand people attended the concert last night.", "Open the window, it is very warm in here.",
    "Guten Morgen, wie geht es Ihnen heute?", "Bonjour, je voudrais un croissant, s'il vous plaît.",
    "Buenos días, ¿dónde está la biblioteca?", "Il treno per Roma parte alle otto.",
    "Het weer is vandaag erg mooi.", "Dzień dobry, jak się masz?", "Hyvää huomenta, mitä kuuluu?",
    "Dobrý den, kde je nádraží?", "God morgon, hur mår du?", "Bom dia, como vai você?",
]
HELDOUT_SENTENCES = [
    "The stale smell of old beer lingers.", "A pot of tea helps to pass the evening.",
    "The small pup gnawed a hole in the sock.", "Her purse was full of useless trash.",
    "Wir fahren morgen früh in die Berge.", "Nous avons visité le musée hier soir.",
]
TRAIN_VOICES = ["en", "en-us", "de", "fr", "es", "it", "nl", "pl", "sv", "pt", "ru", "hi", "el", "tr"]
HELDOUT_VOICES = ["en-gb-scotland", "fi", "cs"]
TRAIN_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+klatt", "+croak", "+whisper"]
HELDOUT_VARIANTS = ["+m6", "+f4", ""]
PYGAME_TRAIN = ["car_door.wav", "boom.wav", "secosmic_lo.wav", "whiff.wav"]
PYGAME_HELDOUT = ["house_lo.wav", "punch.wav"]


# --------------------------------------------------------------------------- corpus


def synthetic_clip(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A random tone / chirp / noise / mixture clip, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sr)) / sr
    kind = rng.integers(0, 6)
    if kind == 0:  # harmonic tone with vibrato
        f0 = rng.uniform(60, 1200)
        vib = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rng.uniform(2, 7) * t)
        phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
        x = sum(rng.uniform(0, 1) / h * np.sin(h * phase) for h in range(1, int(rng.integers(1, 8)) + 1))
    elif kind == 1:  # linear or exponential chirp
        f0, f1 = rng.uniform(50, 7000, 2)
        f = f0 + (f1 - f0) * t / t[-1] if rng.random() < 0.5 else f0 * (f1 / f0) ** (t / t[-1])
        x = np.sin(2 * np.pi * np.cumsum(f) / sr)
    elif kind == 2:  # white / pink / brown noise
        w = rng.standard_normal(t.size)
        spec = np.fft.rfft(w)
        spec /= np.maximum(np.arange(spec.size), 1) ** (rng.choice([0.0, 0.5, 1.0]))
        x = np.fft.irfft(spec, t.size)
    elif kind == 3:  # band-passed noise bursts
        w = np.fft.rfft(rng.standard_normal(t.size))
        freqs = np.fft.rfftfreq(t.size, 1 / sr)
        lo = rng.uniform(100, 5000)
        w[(freqs < lo) | (freqs > lo * rng.uniform(1.2, 3))] = 0
        env = (np.sin(2 * np.pi * rng.uniform(0.5, 6) * t) > rng.uniform(-0.5, 0.5)).astype(float)
        x = np.fft.irfft(w, t.size) * env
    elif kind == 4:  # AM/FM tone
        fc = rng.uniform(200, 3000)
        x = (1 + 0.8 * np.sin(2 * np.pi * rng.uniform(1, 20) * t)) * np.sin(
            2 * np.pi * fc * t + rng.uniform(0, 5) * np.sin(2 * np.pi * rng.uniform(1, 200) * t))
    else:  # clicks and silence
        x = np.zeros(t.size)
        hits = rng.integers(0, t.size, int(rng.integers(3, 30)))
        x[hits] = rng.uniform(-1, 1, hits.size)
        x = np.convolve(x, np.exp(-np.arange(200) / rng.uniform(5, 60)), mode="same")
    x = np.asarray(x, dtype=np.float64)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.05, 0.9)
    fade = min(t.size // 2, int(0.01 * sr))
    x[:fade] *= np.linspace(0, 1, fade)
    x[t.size - fade :] *= np.linspace(1, 0, fade)
    return x.astype(np.float32)


def _espeak(text: str, voice: str, speed: int, pitch: int, path: Path) -> bool:
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text]
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0 and path.stat().st_size > 1000


def _pseudo_text(rng: random.Random) -> str:
    syl = [c + v for c in "bdfgklmnprstvwz" for v in "aeiou"]
    words = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(3, 10))]
    return " ".join(words).capitalize() + rng.choice([".", "?", "!"])


def build_corpus(root: str | Path, *, n_speech: int = 900, n_synthetic: int = 300, seed: int = 0,
                 sample_rate: int = 16_000, progress: bool = True) -> dict[str, Any]:
    """Write ``root/train`` and ``root/heldout`` wav files (16-bit, ``sample_rate``) and a manifest."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    import pygame
    from tqdm import tqdm

    root = Path(root)
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    manifest: dict[str, Any] = {"seed": seed, "sample_rate": sample_rate, "train": [], "heldout": []}
    plan: list[tuple[str, str, Any]] = []  # (split, source, spec)
    for _ in range(n_speech):
        text = rng.choice(SENTENCES) if rng.random() < 0.6 else _pseudo_text(rng)
        voice = rng.choice(TRAIN_VOICES) + rng.choice(TRAIN_VARIANTS)
        plan.append(("train", "espeak", (text, voice, rng.randint(90, 260), rng.randint(5, 95))))
    for i in range(n_speech // 12):
        text = rng.choice(HELDOUT_SENTENCES) if i % 2 else _pseudo_text(rng)
        voice = rng.choice(HELDOUT_VOICES + TRAIN_VOICES[:2]) + rng.choice(HELDOUT_VARIANTS)
        plan.append(("heldout", "espeak", (text, voice, rng.randint(90, 260), rng.randint(5, 95))))
    plan += [("train", "synthetic", float(nprng.uniform(1, 4))) for _ in range(n_synthetic)]
    plan += [("heldout", "synthetic", float(nprng.uniform(1, 4))) for _ in range(n_synthetic // 12)]
    pg = Path(pygame.__file__).parent / "examples" / "data"
    plan += [("train", "pygame", pg / f) for f in PYGAME_TRAIN] + [("heldout", "pygame", pg / f) for f in PYGAME_HELDOUT]
    for split in ("train", "heldout"):
        (root / split).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (split, source, spec) in enumerate(tqdm(plan, desc="corpus", disable=not progress)):
            name = f"{source}-{k:05d}.wav"
            if source == "espeak":
                raw = Path(tmp) / "s.wav"
                if not _espeak(*spec, path=raw):
                    continue
                audio = load_audio(raw, target_rate=sample_rate).numpy()
                entry = {"file": name, "source": "espeak-ng", "text": spec[0], "voice": spec[1],
                         "speed": spec[2], "pitch": spec[3]}
            elif source == "synthetic":
                audio = synthetic_clip(nprng, spec, sample_rate)
                entry = {"file": name, "source": "synthetic", "seconds": spec}
            else:
                audio = load_audio(spec, target_rate=sample_rate).numpy()
                entry = {"file": name, "source": "pygame", "original": spec.name}
            sf.write(root / split / name, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
            entry["seconds"] = round(audio.size / sample_rate, 3)
            manifest[split].append(entry)
    for split in ("train", "heldout"):
        manifest[f"{split}_seconds"] = round(sum(e["seconds"] for e in manifest[split]), 1)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def find_audio(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (recursively), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {str(root)!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"--data {str(root)!r} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def random_crops(feats: Sequence[torch.Tensor], n: int, tokens: int, *, fpt: int, ctx: int,
                 floor: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` token-aligned crops ``[n, M, fpt*tokens + 2*ctx]`` of context features, clips picked by length."""
    width = fpt * tokens + 2 * ctx
    lengths = torch.tensor([f.shape[-1] for f in feats], dtype=torch.float)
    pick = torch.multinomial(lengths, n, replacement=True, generator=generator)
    out = torch.full((n, feats[0].shape[0], width), floor)
    for row, i in enumerate(pick.tolist()):
        f = feats[i]
        slots = max(1, (f.shape[-1] - 2 * ctx) // fpt - tokens + 1)
        start = fpt * int(torch.randint(0, slots, (1,), generator=generator))
        piece = f[:, start : start + width]
        out[row, :, : piece.shape[-1]] = piece
    return out


def lloyd(rows: torch.Tensor, centers: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``iters`` Lloyd steps from ``centers``; an empty cluster is re-seeded on the worst-served rows.

    Returns the centers and the code counts of the last assignment."""
    k = centers.shape[0]
    counts = torch.zeros(k)
    for _ in range(iters):
        idx = nearest_code(rows, centers)
        sums = torch.zeros_like(centers).index_add_(0, idx, rows)
        counts = torch.bincount(idx, minlength=k).float()
        empty = counts == 0
        centers = sums / counts.clamp_min(1)[:, None]
        if bool(empty.any()):
            err = (rows - centers[idx]).pow(2).sum(1)
            centers[empty] = rows[err.topk(int(empty.sum())).indices]
    return centers, counts


def clip_support(idx: torch.Tensor, clips: torch.Tensor, k: int) -> torch.Tensor:
    """For each of ``k`` codes, how many distinct clips (or groups) have a row assigned to it."""
    return torch.bincount((clips * k + idx).unique() % k, minlength=k)


def pair_weights(idx: torch.Tensor, groups: torch.Tensor, k: int) -> torch.Tensor:
    """Row weights ``[N]`` that give every (group, code) pair a total weight of 1.

    Summed per code they count the distinct groups the code serves, so a cluster of
    a thousand near-identical slices of one recording weighs as much as one slice."""
    _, inv = torch.unique(groups * k + idx, return_inverse=True)
    return 1.0 / torch.bincount(inv).float()[inv]


def weighted_lloyd(rows: torch.Tensor, groups: torch.Tensor, centers: torch.Tensor, iters: int) -> torch.Tensor:
    """``iters`` Lloyd steps where each code moves to the :func:`pair_weights` mean of its rows:
    the center of what the groups it serves share, not of the group that has the most rows there."""
    k = centers.shape[0]
    centers = centers.clone()
    for _ in range(iters):
        idx = nearest_code(rows, centers)
        w = pair_weights(idx, groups, k)
        sums = torch.zeros_like(centers).index_add_(0, idx, rows * w[:, None])
        mass = torch.zeros(k).index_add_(0, idx, w)
        keep = mass > 0
        centers[keep] = sums[keep] / mass[keep, None]
    return centers


def balance_codes(rows: torch.Tensor, groups: torch.Tensor, centers: torch.Tensor, *, rounds: int,
                  min_groups: int, iters: int, generator: torch.Generator,
                  per_round: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-balanced k-means: LBG-style retire-and-split rounds with group-weighted Lloyd steps.

    ``rows`` [N, D] with ``groups`` [N], the group of each row: a speaker (voice and
    variant) for speech, the recording itself otherwise. A code serving fewer than
    ``min_groups`` groups fits the content of a few speakers or one outlier recording
    and is rarely hit by new audio. Each round retires up to ``per_round`` such codes
    (default K/8, the least supported first) and re-seeds each inside one of the
    clusters with the largest group-weighted distortion (a row drawn in proportion to
    its weighted error), then runs ``iters`` :func:`weighted_lloyd` steps, so that the
    codes settle on content many groups share. Ends early once every code serves
    ``min_groups`` groups. Returns the centers and the code counts of their assignment.
    """
    k = centers.shape[0]
    per_round = per_round or max(1, k // 8)
    centers = centers.clone()
    for _ in range(rounds):
        idx = nearest_code(rows, centers)
        w = pair_weights(idx, groups, k)
        support = torch.zeros(k).index_add_(0, idx, w)  # distinct groups per code
        weak = (support < min_groups - 0.5).nonzero().flatten()
        if weak.numel() == 0:
            break
        weak = weak[support[weak].argsort(stable=True)][:per_round]
        err = w * (rows - centers[idx]).pow(2).sum(1)
        score = torch.zeros(k).index_add_(0, idx, err)
        score[weak] = -1.0
        for dst, src in zip(weak.tolist(), score.topk(weak.numel()).indices.tolist(), strict=True):
            members = (idx == src).nonzero().flatten()
            pick = torch.multinomial(err[members].clamp_min(1e-12), 1, generator=generator)
            centers[dst] = rows[members[pick]]
        centers = weighted_lloyd(rows, groups, centers, iters)
    else:  # every round moved codes (or there were none): assign once more; after a break idx is current
        idx = nearest_code(rows, centers)
    return centers, torch.bincount(idx, minlength=k).float()


@torch.no_grad()
def fit_codebook(tok: AudioTokenizer, feats: Sequence[torch.Tensor], *, vectors: int, iters: int,
                 generator: torch.Generator, balance_rounds: int = 0, min_groups: int = 15,
                 balance_iters: int = 3, groups: Sequence[int] | None = None) -> torch.Tensor:
    """k-means over the vectors the encoder gives for ``feats`` (one tensor per clip); fills ``tok.vq``'s codes.

    Lloyd (``iters`` steps, seeds are random vectors, an empty cluster is re-seeded on
    the worst-served vectors) on at most ``vectors`` random vectors; then, if
    ``balance_rounds``, :func:`balance_codes` so that every code serves at least
    ``min_groups`` groups. ``groups`` gives each clip's group (its speaker, say);
    default: every clip is its own group. Returns the code counts of the last assignment.
    """
    ctx = tok.context_frames
    if groups is not None and len(groups) != len(feats):
        raise ValueError(f"fit_codebook: {len(groups)} groups for {len(feats)} clips")
    per_clip = [tok._latent(f[None].to(tok.device))[0].cpu() for f in feats]
    rows = torch.cat(per_clip)  # (N, D)
    gid = list(range(len(feats))) if groups is None else list(groups)
    row_groups = torch.cat([torch.full((r.shape[0],), g, dtype=torch.long) for g, r in zip(gid, per_clip, strict=True)])
    pick = torch.randperm(rows.shape[0], generator=generator)[:vectors]
    rows, row_groups = rows[pick].contiguous(), row_groups[pick]
    k = tok.codebook_size
    centers, counts = lloyd(rows, rows[:k].clone(), iters)
    if balance_rounds:
        centers, counts = balance_codes(rows, row_groups, centers, rounds=balance_rounds, min_groups=min_groups,
                                        iters=balance_iters, generator=generator)
    vq = tok.vq
    assert ctx >= 0 and vq.cfg.codebook_dim is None and not vq.cfg.cosine
    centers, counts = centers.to(vq.embed.device), counts.to(vq.embed.device)
    vq.embed.copy_(centers)
    vq.ema_count.copy_(counts)
    vq.ema_sum.copy_(centers * counts[:, None])
    vq.initted.fill_(True)
    return counts


def speaker_groups(files: Sequence[Path], spec: str) -> tuple[list[int], str]:
    """Group index of every training file for the balanced codebook, and a description.

    ``spec``: ``file`` (every file its own group), a JSON file mapping file names to
    group labels (files it does not name are their own group), or ``auto``: the
    ``voice`` of each espeak-ng clip in the corpus ``manifest.json`` next to the
    files' folder (what :func:`build_corpus` writes), else ``file``.
    """
    labels: dict[str, str] = {}
    how = "file"
    if spec == "auto":
        for cand in {f.parent.parent / "manifest.json" for f in files} | {f.parent / "manifest.json" for f in files}:
            if cand.is_file():
                man = json.loads(cand.read_text())
                for split in ("train", "heldout"):
                    labels.update({e["file"]: "voice:" + e["voice"] for e in man.get(split, []) if e.get("voice")})
                how = f"espeak-ng voice from {cand}"
    elif spec != "file":
        path = Path(spec)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise AudioError(f"--kmeans-groups {spec!r}: not a readable JSON file ({e})") from e
        if not isinstance(raw, dict):
            raise AudioError(f"--kmeans-groups {spec!r}: expected a JSON object mapping file names to groups")
        labels = {str(a): "label:" + str(b) for a, b in raw.items()}
        how = f"labels from {path}"
    index: dict[str, int] = {}
    out = [index.setdefault(labels.get(f.name, "file:" + str(f)), len(index)) for f in files]
    return out, f"{how}: {len(index)} groups over {len(files)} files"


def split_validation(files: Sequence[Path], fraction: float, *, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold aside a random ``fraction`` of ``files`` (never ``pygame-*`` ones: too few) -> ``(train, validation)``."""
    files = list(files)
    if fraction <= 0:
        return files, []
    pool = [i for i, f in enumerate(files) if not f.name.startswith("pygame")]
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 12345)).tolist()
    val = {pool[j] for j in order[: round(fraction * len(files))]}
    return [f for i, f in enumerate(files) if i not in val], [f for i, f in enumerate(files) if i in val]


@torch.no_grad()
def validate(tok: AudioTokenizer, files: Sequence[Path]) -> dict[str, Any]:
    """Codebook usage over ``files`` and mean relative L1 (L1 / clip log-mel range) of the decoder and
    of the bare codes (the k-means view) on them."""
    k, fpt = tok.codebook_size, tok.cfg.frames_per_token
    seen = torch.zeros(k, dtype=torch.long)
    ours, bare = [], []
    for f in files:
        audio = load_audio(f, target_rate=tok.sample_rate)
        codes = tok.encode(audio, tok.sample_rate)
        seen += torch.bincount(codes, minlength=k)
        ctx = tok.context_frames
        target = tok.context_features(audio)
        target = target[:, ctx : target.shape[-1] - ctx]  # the frames the tokens stand for (as benchmarks/audio.py)
        span = max(float(target.max() - target.min()), 1e-6)
        ours.append(float((tok.decode_features(codes)[:, : target.shape[-1]] - target).abs().mean()) / span)
        if tok.cfg.encoder_kind == "slice":
            slices = tok.vq.embed[codes].reshape(-1, fpt, tok.cfg.n_mels).permute(2, 0, 1).reshape(tok.cfg.n_mels, -1)
            bare.append(float((slices[:, : target.shape[-1]] - target).abs().mean()) / span)
    out = {"clips": len(files), "tokens": int(seen.sum()), "usage": round(float((seen > 0).float().mean()), 4),
           "rel_l1": round(sum(ours) / len(ours), 5)}
    if bare:
        out["rel_l1_codes_only"] = round(sum(bare) / len(bare), 5)
    return out


# --------------------------------------------------------------------------- pictures


def save_pictures(tok: AudioTokenizer, mel: torch.Tensor, counts: torch.Tensor, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.inference_mode():
        res = tok(mel[None].to(tok.device))
    fig, ax = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    lo, hi = float(res.target.min()), float(res.target.max())
    for a, m, title in zip(ax, (res.target[0], res.reconstruction[0]), ("original", "reconstructed"), strict=True):
        a.imshow(m.cpu().numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi)
        a.set_title(f"{title} log-mel")
    fig.tight_layout()
    fig.savefig(out / "mel.png", dpi=80)
    plt.close(fig)
    fig, a = plt.subplots(figsize=(8, 3))
    c = counts.sort(descending=True).values.numpy()
    a.bar(np.arange(c.size), c, width=1.0)
    a.set_title(f"codebook usage: {(c > 0).mean():.1%} of {c.size} codes used")
    a.set_xlabel("code (sorted by count)")
    fig.tight_layout()
    fig.savefig(out / "codebook-usage.png", dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def model_card(cfg: AudioTokenizerConfig, prov: dict[str, Any]) -> str:
    """A short model card: what it is, how it was trained (exact command), on what."""
    return f"""# mmtok audio tokenizer

Log-mel slices -> learned VQ codes -> log-mel -> waveform (NNLS mel inversion + torchaudio Griffin-Lim,
{cfg.griffin_lim_iters} iterations). {cfg.sample_rate} Hz mono, {cfg.n_mels} mels, hop {cfg.hop_length},
{cfg.sample_rate // cfg.samples_per_token} tokens/s, one codebook of {cfg.codebook_size} codes.

## Training

- command: `{prov.get("command")}`
- data: {prov.get("data")} ({prov.get("train_files")} files, {prov.get("train_seconds")} s)
- steps: {prov.get("steps")}, time: {prov.get("train_minutes")} min on {prov.get("machine")}, {prov.get("threads")} thread(s)
- last batch: {json.dumps(prov.get("last", {}))}
"""



def lr_at(step: int, *, base: float, warmup: int, total: int, final_frac: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmtok train-tokenizer audio",
                                description="Train the audio tokenizer on a folder of audio files.")
    p.add_argument("--data", required=True, help="folder of training audio (DIR/train if it exists, else DIR)")
    p.add_argument("--out", required=True, help="output folder (tokenizer checkpoint, train state, PNGs)")
    p.add_argument("--make-data", action="store_true", help="first build the espeak-ng/pygame/synthetic corpus in --data (if absent)")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps in total")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train-state if it exists")
    p.add_argument("--batch-size", type=int, default=32, help="crops per step")
    p.add_argument("--crop-tokens", type=int, default=48, help="tokens per training crop")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak AdamW learning rate")
    p.add_argument("--warmup", type=int, default=150, help="linear warmup steps")
    p.add_argument("--codebook-size", type=int, default=1024, help="K: number of codes")
    p.add_argument("--encoder", choices=["slice", "conv"], default="slice",
                   help="slice: k-means codes of each token's frames + context decoder; conv: learned encoder (VQ-VAE)")
    p.add_argument("--code-dim", type=int, default=None, help="size of the code vectors (conv; slice: fpt*n_mels)")
    p.add_argument("--kmeans-vectors", type=int, default=200_000,
                   help="slice: training vectors the codebook is fitted on (random subset; default: %(default)s)")
    p.add_argument("--kmeans-iters", type=int, default=25, help="slice: Lloyd iterations")
    p.add_argument("--kmeans-balance", type=int, default=20, metavar="ROUNDS",
                   help="slice: group-balanced k-means: after Lloyd, ROUNDS rounds that retire codes serving fewer "
                        "than --kmeans-min-groups groups (speakers) and re-seed them inside the clusters with the "
                        "largest group-weighted distortion, each followed by 3 group-weighted Lloyd steps; "
                        "0 = plain Lloyd (default: %(default)s)")
    p.add_argument("--kmeans-min-groups", type=int, default=15,
                   help="slice: a code must serve at least this many groups (default: %(default)s)")
    p.add_argument("--kmeans-groups", default="auto", metavar="auto|file|JSON",
                   help="slice: what a group is: auto = the speaker (espeak-ng voice and variant) of each clip "
                        "from the corpus manifest.json, other clips on their own; file = every file; or a JSON "
                        "file mapping file names to group labels (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="fraction of training clips held aside (never fitted nor trained on; pygame files stay in "
                        "training); codebook usage and reconstruction on them go to summary.json")
    p.add_argument("--encoder-channels", type=int, default=128, help="encoder width")
    p.add_argument("--decoder-channels", type=int, default=256, help="decoder width")
    p.add_argument("--save-every", type=int, default=200, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = Path(args.data)
    if args.make_data and not (data / "manifest.json").is_file():
        build_corpus(data, seed=args.seed, progress=not args.no_progress)
    train_dir = data / "train" if (data / "train").is_dir() else data
    files = find_audio(train_dir)
    files, val_files = split_validation(files, args.val_fraction, seed=args.seed)
    groups, new_groups_note = speaker_groups(files, args.kmeans_groups)  # bad --kmeans-groups fails here, early
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    conv = args.encoder == "conv"
    cfg = AudioTokenizerConfig(
        codebook_size=args.codebook_size, encoder_kind=args.encoder,
        code_dim=args.code_dim or (64 if conv else 2 * 80), encoder_channels=args.encoder_channels,
        decoder_channels=args.decoder_channels, vq_cosine=conv, vq_lookup_dim=16 if conv else None,
    )
    tok = AudioTokenizer(cfg).to(device)
    with torch.inference_mode():
        feats = [tok.context_features(load_audio(f, target_rate=cfg.sample_rate).to(device)).cpu() for f in files]
    seconds = sum(f.shape[-1] for f in feats) * cfg.hop_length / cfg.sample_rate
    opt = torch.optim.AdamW([p for p in tok.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=0.0, betas=(0.9, 0.99))
    step, elapsed, groups_note = 0, 0.0, None
    state = out / STATE_DIR
    if args.resume and (state / "config.json").is_file():
        st = load_train_state(state, model=tok, optimizer=opt, kind="audio")
        step, elapsed = st["step"], float(st["extra"].get("elapsed", 0.0))
        groups_note = st["extra"].get("codebook_groups")
        print(f"resumed at step {step}", file=sys.stderr)
    else:
        allf = torch.cat([f[:, tok.context_frames : f.shape[-1] - tok.context_frames] for f in feats], 1)
        tok.feature_mean.copy_(allf.mean(1, keepdim=True))
        tok.feature_std.copy_(allf.std(1, keepdim=True).clamp_min(0.1))
        if not conv:
            t = time.perf_counter()
            groups_note = new_groups_note
            print(f"balanced codebook groups: {groups_note}", file=sys.stderr)
            fit_codebook(tok, feats, vectors=args.kmeans_vectors, iters=args.kmeans_iters,
                         generator=torch.Generator().manual_seed(args.seed), balance_rounds=args.kmeans_balance,
                         min_groups=args.kmeans_min_groups, groups=groups)
            print(f"k-means codebook: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    gen = torch.Generator().manual_seed(args.seed * 1000 + step)
    command = "mmtok train-tokenizer audio " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    prov: dict[str, Any] = {"command": command, "data": str(data), "train_files": len(files),
                            "validation_files": [f.name for f in val_files],
                            "train_seconds": round(seconds, 1), "machine": f"{platform.machine()} {device}",
                            "threads": torch.get_num_threads(), "codebook_groups": groups_note}
    last: dict[str, float] = {}

    def checkpoint(final: bool) -> None:
        extra = {"elapsed": elapsed, "codebook_groups": groups_note, **last}
        save_train_state(state, kind="audio", config=cfg, model=tok, optimizer=opt, step=step,
                         extra=extra, provenance=prov)
        if final:
            prov.update(steps=step, train_minutes=round(elapsed / 60, 1), last=last)
            save(tok, out / MODEL_DIR, provenance=prov, extra_files={"README.md": model_card(cfg, prov)})
            tok.vq.reset_stats()
            tok.eval()
            with torch.inference_mode():
                for f in feats[:400]:
                    tok(f[None].to(device))
            counts = tok.vq.usage_stats().counts
            if val_files:
                prov["validation"] = validate(tok, val_files)
            train_mode()
            save_pictures(tok, feats[0][:, : 2 * 200 + 2 * tok.context_frames], counts, out)
            (out / "summary.json").write_text(json.dumps(prov, indent=1))

    def train_mode() -> None:
        tok.train()
        if not conv:
            tok.vq.eval()  # the k-means codebook stays fixed: only the decoder learns

    train_mode()
    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, desc="audio tokenizer")
    t0 = time.perf_counter() - elapsed
    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, base=args.lr, warmup=args.warmup, total=args.steps)
        mel = random_crops(feats, args.batch_size, args.crop_tokens, fpt=cfg.frames_per_token,
                           ctx=tok.context_frames, floor=math.log(cfg.log_floor), generator=gen).to(device)
        res = tok(mel)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.perf_counter() - t0
        last = {"loss": round(res.recon_loss.item(), 4), "usage": round(res.usage.item(), 3),
                "perplexity": round(res.perplexity.item(), 1)}
        bar.update(1)
        bar.set_postfix(l1=last["loss"], use=last["usage"], ppl=last["perplexity"])
        if step % args.save_every == 0 and step < args.steps:
            checkpoint(final=False)
    bar.close()
    checkpoint(final=True)
    print(json.dumps({"steps": step, "minutes": round(elapsed / 60, 1), **last}))
    return 0
