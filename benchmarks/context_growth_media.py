"""The generated media of ``context_growth.py``: a large photo-like image, a camera panning over it with a
chord soundtrack, and fixed-camera scenes, written as H.264 (+ AAC) with PyAV.

Seeded by the caller's generator; every size and rate is a constant below.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SRC_FPS = 8  # frame rate of the generated video
FRAME_W, FRAME_H = 320, 240  # its frame size
WORLD_W, WORLD_H = 4096, 1024  # the large image the camera pans over
AUDIO_RATE = 16_000


def _world(rng: np.random.Generator) -> np.ndarray:
    """A large photo-like uint8 image ``[WORLD_H, WORLD_W, 3]``: smooth noise, hills, discs and stripes."""
    small = rng.random((WORLD_H // 64 + 1, WORLD_W // 64 + 1, 3)).astype(np.float32)
    t = torch.from_numpy(small).permute(2, 0, 1)[None]
    base = F.interpolate(t, size=(WORLD_H, WORLD_W), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    fine = F.interpolate(torch.from_numpy(rng.random((3, WORLD_H // 8, WORLD_W // 8)).astype(np.float32))[None],
                         size=(WORLD_H, WORLD_W), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    img = 0.7 * base + 0.3 * fine
    yy, xx = np.mgrid[0:WORLD_H, 0:WORLD_W]
    horizon = WORLD_H * 0.55 + 80 * np.sin(xx / 300.0)  # hills
    img[yy > horizon] *= np.array([0.5, 0.9, 0.4], np.float32)
    for _ in range(60):  # discs and stripes: edges the codes must follow
        cx, cy, r = rng.integers(0, WORLD_W), rng.integers(0, WORLD_H), rng.integers(20, 120)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.random(3)
    img[(xx // 40) % 7 == 0] *= 0.6
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _soundtrack(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A chord that changes every 2 s, with noise bursts: float32 mono."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    roots = 220 * 2 ** (rng.integers(0, 12, int(seconds // 2) + 1) / 12)
    f = roots[(t // 2).astype(int)]
    wave = sum(np.sin(2 * np.pi * f * m * t) / (k + 1) for k, m in enumerate((1.0, 1.25, 1.5)))
    bursts = (np.sin(2 * np.pi * 0.7 * t) > 0.95) * rng.standard_normal(t.size)
    return (0.2 * wave + 0.1 * bursts).astype(np.float32)


def write_video(path: Path, frames, n: int, *, audio: np.ndarray | None = None) -> Path:
    """Encode ``n`` frames from the iterator ``frames`` (uint8 HWC) at ``SRC_FPS`` as H.264 (+ AAC)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=SRC_FPS)
        s.width, s.height, s.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23"}
        a = c.add_stream("aac", rate=AUDIO_RATE) if audio is not None else None
        for i, img in zip(range(n), frames, strict=False):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, SRC_FPS)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
        if a is not None:
            for k in range(0, audio.size, 1024):
                af = av.AudioFrame.from_ndarray(audio[None, k : k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = AUDIO_RATE, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def pan_frames(world: np.ndarray, n: int):
    """The camera moves right 24 px per frame with a slow vertical sway, wrapping around the world."""
    for i in range(n):
        x = (24 * i) % (WORLD_W - FRAME_W)
        y = int((WORLD_H - FRAME_H) / 2 * (1 + math.sin(i / 40)))
        yield np.ascontiguousarray(world[y : y + FRAME_H, x : x + FRAME_W])


def scene_frames(world: np.ndarray, n: int, rng: np.random.Generator, *, moving: bool, noise: float):
    """A fixed camera; with ``moving``, three discs cross the view; ``noise``: sensor noise std (0..255)."""
    bg = world[200 : 200 + FRAME_H, 600 : 600 + FRAME_W].astype(np.float32)
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W]
    for i in range(n):
        img = bg.copy()
        if moving:
            for k, (speed, r) in enumerate(((6, 30), (-4, 22), (9, 16))):
                cx, cy = (40 + speed * i + 100 * k) % FRAME_W, 60 + 60 * k
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (255.0 * (k == 0), 200.0, 255.0 * (k == 2))
        if noise:
            img += rng.normal(0, noise, img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)
