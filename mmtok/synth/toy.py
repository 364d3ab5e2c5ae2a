"""Generated toy tasks that show a model learning across modalities.

``color_shapes_corpus`` writes an interleaved corpus of documents like
``"a circle in red" + <the picture of a red circle>``: small PNG renderings of a
coloured shape on white, each with its caption. A model that learns the task
draws pictures whose dominant colour is the one the prompt names — for
colour/shape combinations it never saw, when some are held out.
``tones_corpus`` does the same for sound: ``"a high tone" + <a short tone>``,
checked with :func:`dominant_pitch`.

>>> sorted(COLORS)[:3]
['blue', 'cyan', 'green']
>>> dominant_color(render("red", "square", np.random.default_rng(0)))
'red'
>>> dominant_pitch(render_tone("high", np.random.default_rng(0)), 16000)
'high'
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = [
    "COLORS",
    "PITCHES",
    "SHAPES",
    "caption",
    "color_shapes_corpus",
    "dominant_color",
    "dominant_pitch",
    "pitch_round_trip",
    "render",
    "render_tone",
    "tone_caption",
    "tones_corpus",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
    "magenta": (210, 40, 200),
    "cyan": (40, 200, 210),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
BACKGROUND = (255, 255, 255)
PITCHES: dict[str, float] = {"low": 220.0, "middle": 660.0, "high": 1980.0}  # Hz, a factor of 3 apart
TONE_RATE = 16_000  # sample rate of the rendered tones


def render(color: str, shape: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """An ``[size, size, 3]`` uint8 picture: one large ``shape`` in ``color`` on white."""
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.30, 0.42)  # large: the shape dominates the picture
    cx, cy = (size / 2 + rng.uniform(-0.1, 0.1, 2) * size).tolist()
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r * 1.1), (cx - r * 1.1, cy + r), (cx + r * 1.1, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r * 1.2), (cx + r * 1.2, cy), (cx, cy + r * 1.2), (cx - r * 1.2, cy)], fill=fill)
    elif shape == "cross":
        draw.rectangle([cx - r, cy - r * 0.45, cx + r, cy + r * 0.45], fill=fill)
        draw.rectangle([cx - r * 0.45, cy - r, cx + r * 0.45, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * 0.5)))
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    return np.asarray(img)


def caption(color: str, shape: str) -> str:
    """The caption of a picture: the colour comes last, right before the picture."""
    return f"a {shape} in {color}"


def dominant_color(img: Any) -> str:
    """The named colour (of :data:`COLORS`) nearest to most non-background pixels.

    ``img`` is ``[H, W, 3]`` uint8 or ``[3, H, W]`` float in [0, 1].
    """
    a = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(img))
    if a.dim() == 3 and a.shape[0] == 3 and a.is_floating_point():
        a = a.permute(1, 2, 0) * 255
    px = a.reshape(-1, 3).float()  # (P, 3)
    names = list(COLORS)
    palette = torch.tensor([COLORS[n] for n in names] + [BACKGROUND], dtype=torch.float32)  # (C+1, 3)
    nearest = torch.cdist(px, palette).argmin(1)
    counts = torch.bincount(nearest, minlength=len(palette))[: len(names)]
    return names[int(counts.argmax())]


def color_shapes_corpus(
    folder: str | os.PathLike[str],
    *,
    n_docs: int,
    seed: int = 0,
    held_out: Sequence[tuple[str, str]] = (),
    size: int = 64,
) -> Path:
    """Write ``n_docs`` captioned pictures and ``docs.jsonl`` into ``folder``; return the JSONL path.

    Combinations in ``held_out`` (``("red", "triangle")``, ...) never appear.
    """
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    combos = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in set(held_out)]
    lines = []
    for k in range(n_docs):
        color, shape = combos[int(rng.integers(len(combos)))]
        name = f"img/{k:05d}.png"
        Image.fromarray(render(color, shape, rng, size)).save(folder / name)
        lines.append(json.dumps({"segments": [{"text": caption(color, shape)}, {"image": name}]}))
    path = folder / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def render_tone(pitch: str, rng: np.random.Generator, seconds: float = 0.4, sample_rate: int = TONE_RATE) -> np.ndarray:
    """A float32 tone named by ``pitch`` (of :data:`PITCHES`): the fundamental ±6 %, two
    harmonics of random weight, random loudness, 20 ms fades."""
    if pitch not in PITCHES:
        raise ValueError(f"unknown pitch {pitch!r}; choose from {list(PITCHES)}")
    f0 = PITCHES[pitch] * float(rng.uniform(0.94, 1.06))
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    h2, h3 = rng.uniform(0.0, 0.4, 2)
    wave = np.sin(2 * np.pi * f0 * t) + h2 * np.sin(4 * np.pi * f0 * t) + h3 * np.sin(6 * np.pi * f0 * t)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (float(rng.uniform(0.2, 0.5)) * wave * fade / (1 + h2 + h3)).astype(np.float32)


def tone_caption(pitch: str) -> str:
    """The caption of a tone."""
    return f"a {pitch} tone"


def dominant_pitch(wave: Any, sample_rate: int) -> str:
    """The name in :data:`PITCHES` nearest (in octaves) to the strongest frequency between 80 Hz and 6 kHz."""
    x = np.asarray(wave.cpu() if isinstance(wave, torch.Tensor) else wave, dtype=np.float64).reshape(-1)
    if x.size < 64:
        raise ValueError(f"need at least 64 samples to find a pitch, got {x.size}")
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / sample_rate)
    band = (freqs >= 80) & (freqs <= 6000)
    peak = float(freqs[band][np.argmax(spec[band])])
    return min(PITCHES, key=lambda name: abs(np.log2(peak / PITCHES[name])))


def pitch_round_trip(tok: Any, *, per_pitch: int = 8, seed: int = 0, vocoder: Any = "auto") -> dict[str, Any]:
    """How often an audio tokenizer's round trip keeps a rendered tone's pitch: ``per_pitch`` tones of
    each of :data:`PITCHES` (seeded), ``tok.decode(tok.encode(tone), vocoder=vocoder)``, then
    :func:`dominant_pitch`. Returns ``{"tones", "kept", "accuracy", "per_pitch": {name: kept},
    "level_db": {name: median dB}}``: ``level_db`` is the round trip's level change (RMS out over
    RMS in, in dB; 0 is lossless), since a tone can keep its pitch and still come back far quieter.

    The toy tones task (``tones_corpus``) is learnable only if this is high: a tokenizer that
    decodes a 1,980 Hz tone as a lower one cannot sound "a high tone" whatever the model says.
    """
    rng = np.random.default_rng(seed)
    per: dict[str, int] = {}
    level: dict[str, float] = {}
    for name in PITCHES:
        kept, changes = 0, []
        for _ in range(per_pitch):
            wave = torch.from_numpy(render_tone(name, rng, sample_rate=tok.sample_rate))
            back = tok.decode(tok.encode(wave, tok.sample_rate), vocoder=vocoder)
            kept += dominant_pitch(back, tok.sample_rate) == name
            rms_in, rms_out = float(wave.pow(2).mean().sqrt()), float(back.float().pow(2).mean().sqrt())
            changes.append(20.0 * np.log10(max(rms_out, 1e-9) / max(rms_in, 1e-9)))
        per[name] = kept
        level[name] = round(float(np.median(changes)), 1)
    total = per_pitch * len(PITCHES)
    return {"tones": total, "kept": sum(per.values()), "accuracy": round(sum(per.values()) / total, 4), "per_pitch": per,
            "level_db": level}


def tones_corpus(folder: str | os.PathLike[str], *, n_docs: int, seed: int = 0, seconds: float = 0.4) -> Path:
    """Write ``n_docs`` captioned tones (WAV in ``snd/``) and ``tones.jsonl`` into ``folder``; return its path."""
    import soundfile as sf

    folder = Path(folder)
    (folder / "snd").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(PITCHES)
    lines = []
    for k in range(n_docs):
        pitch = names[int(rng.integers(len(names)))]
        name = f"snd/{k:05d}.wav"
        sf.write(folder / name, render_tone(pitch, rng, seconds), TONE_RATE)
        lines.append(json.dumps({"segments": [{"text": tone_caption(pitch)}, {"audio": name}]}))
    path = folder / "tones.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
