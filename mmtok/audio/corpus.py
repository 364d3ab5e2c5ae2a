"""An audio corpus made on this machine, and seeded synthetic clips.

The shipped audio tokenizer is trained on real recordings from Debian packages
(``models/audio/README.md``), not on this corpus. :func:`build_corpus` writes ``root/train`` and
``root/heldout`` wav files and a ``manifest.json``: speech from ``espeak-ng`` (many languages, voice variants,
speeds and pitches; some voices, variants and sentences only in the held-out
split), the example sounds shipped in the ``pygame`` package, and synthetic tones,
chirps and noise (:func:`synthetic_clip`). ``mmtok train-tokenizer audio
--make-data`` calls it.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mmtok.audio.io import load_audio
from mmtok.core.errors import UsageError
from mmtok.core.limits import FLOAT32, TENSOR_BYTES, MemoryUse

__all__ = ["FULL_RANGE_RATE", "HELDOUT_VOICES", "SYNTHETIC_MEMORY", "TRAIN_VOICES", "build_corpus", "steady_tone",
           "synthetic_clip", "synthetic_clips"]

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
FULL_RANGE_RATE = 16_000  # Hz: at this rate and above, synthetic_clip draws its frequencies from its full ranges


def synthetic_clip(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A random tone / chirp / noise / mixture clip, float32 in [-1, 1]. Below :data:`FULL_RANGE_RATE` the
    upper limits of its frequency ranges shrink with ``sr``, so that they stay under Nyquist.

    >>> x = synthetic_clip(np.random.default_rng(7), 1.0, 8000)
    >>> x.shape, bool(np.abs(x).max() > 0)
    ((8000,), True)
    """
    t = np.arange(int(seconds * sr)) / sr
    top = min(1.0, sr / FULL_RANGE_RATE)  # the ranges' upper limits, scaled (1: as drawn at 16 kHz)
    kind = rng.integers(0, 6)
    if kind == 0:  # harmonic tone with vibrato
        f0 = rng.uniform(60, 1200 * top)
        vib = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rng.uniform(2, 7) * t)
        phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
        x = sum(rng.uniform(0, 1) / h * np.sin(h * phase) for h in range(1, int(rng.integers(1, 8)) + 1))
    elif kind == 1:  # linear or exponential chirp
        f0, f1 = rng.uniform(50, 7000 * top, 2)
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
        lo = rng.uniform(100, 5000 * top)
        w[(freqs < lo) | (freqs > lo * rng.uniform(1.2, 3))] = 0
        env = (np.sin(2 * np.pi * rng.uniform(0.5, 6) * t) > rng.uniform(-0.5, 0.5)).astype(float)
        x = np.fft.irfft(w, t.size) * env
    elif kind == 4:  # AM/FM tone
        fc = rng.uniform(200, 3000 * top)
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


def steady_tone(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A steady tone: fundamental log-uniform in 50 Hz - 0.35 × ``sr``, up to three harmonics of
    random weight (those below Nyquist), a slight vibrato half the time, a level from -30 to -1 dB
    full scale and 10 ms fades; float32. Whistles, beeps, sirens and held notes are steady tones,
    and speech recordings hold few of them.

    >>> x = steady_tone(np.random.default_rng(0), 1.0, 16000)
    >>> x.shape, x.dtype, bool(np.abs(x).max() <= 1.0)
    ((16000,), dtype('float32'), True)
    """
    t = np.arange(int(seconds * sr)) / sr
    f0 = float(np.exp(rng.uniform(np.log(50.0), np.log(0.35 * sr))))
    vib = 1 + (rng.uniform(0, 0.01) if rng.random() < 0.5 else 0.0) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
    x = np.sin(phase)
    for h in range(2, 2 + int(rng.integers(0, 4))):
        if h * f0 < 0.45 * sr:
            x = x + rng.uniform(0, 0.5) * np.sin(h * phase)
    x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
    fade = min(t.size // 2, int(0.01 * sr))
    x[:fade] *= np.linspace(0, 1, fade)
    x[t.size - fade :] *= np.linspace(1, 0, fade)
    return x.astype(np.float32)


def synthetic_clips(n: int, *, seed: int, sample_rate: int = 16000, tones: float = 0.0) -> list[np.ndarray]:
    """``n`` seeded :func:`synthetic_clip` waveforms of 1-4 s (float32): the same ``seed`` gives the
    same clips, in the tokenizer trainer and the vocoder trainer alike. ``tones``: the fraction of
    them that are :func:`steady_tone` instead (drawn from a separate seed, so ``tones=0`` gives the
    same clips as before the option existed).

    >>> [round(len(c) / 16000, 2) for c in synthetic_clips(2, seed=0)]
    [2.83, 1.88]
    """
    if not 0.0 <= tones <= 1.0:
        raise ValueError(f"tones must be a fraction in [0, 1], got {tones}")
    rng = np.random.default_rng(seed + 777)
    tone_rng, pick = np.random.default_rng(seed + 991), np.random.default_rng(seed + 992)
    out = []
    for _ in range(n):
        if tones > 0 and pick.random() < tones:
            out.append(steady_tone(tone_rng, float(tone_rng.uniform(1.0, 4.0)), sample_rate))
        else:
            out.append(synthetic_clip(rng, float(rng.uniform(1.0, 4.0)), sample_rate))
    return out


# what --synthetic N asks for at once (mmtok.core.limits): N clips of at least a second of float32 samples each
SYNTHETIC_MEMORY = MemoryUse("the synthetic clips (float32, 1 to 4 s each)", ("synthetic",),
                             lambda a: a.synthetic * (16_000.0 * FLOAT32 + TENSOR_BYTES))


def add_synthetic_arguments(parser: Any, *, unit: str) -> None:
    """``--synthetic N``, ``--synthetic-share F`` and ``--synthetic-tones F`` on an argparse ``parser``,
    as the tokenizer trainer (``unit="crops"``) and the vocoder trainer (``unit="segments"``) both take
    them; the clips are :func:`synthetic_clips`."""
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help=f"also train on N seeded synthetic tones, chirps, noises and clicks (1-4 s; "
                             f"mmtok.audio.corpus.synthetic_clips), --synthetic-share of the {unit}; real "
                             "recordings hold few steady tones, and a model trained without any may not keep a pitch")
    parser.add_argument("--synthetic-share", type=float, default=0.05, metavar="F",
                        help=f"fraction of the training {unit} taken from the --synthetic clips")
    parser.add_argument("--synthetic-tones", type=float, default=0.0, metavar="F",
                        help="fraction of the --synthetic clips that are steady tones (50 Hz to 0.35 × the rate, "
                             "up to three harmonics; mmtok.audio.corpus.steady_tone)")


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
    pygame = importlib.util.find_spec("pygame")  # its folder only: the example sounds, without starting SDL
    if pygame is None or not pygame.submodule_search_locations:
        raise UsageError("building the audio corpus needs the example sounds of the pygame package: "
                         "pip install 'mmtok[audio-data]'")
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
    pg = Path(next(iter(pygame.submodule_search_locations))) / "examples" / "data"
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
