"""Rebuild the example media in this folder (what ``mmtok demo`` and the examples read).

Run from the repository root:  python examples/data/make_data.py
Needs: scikit-image (``pip install mmtok[image-data]``), PyAV (``mmtok[video]``),
soundfile, and Debian's ``espeak-ng`` (``apt-get install espeak-ng``).
Everything is made from packages on this machine; nothing is downloaded.
"""

from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

HERE = Path(__file__).resolve().parent
SIDE = 288  # shorter side of the stored images (the tokenizer resizes to 256 and crops)

# scikit-image sample -> file here (format chosen to exercise the loaders)
IMAGES = {"coffee": "coffee.jpg", "rocket": "rocket.jpg", "chelsea": "chelsea.jpg",
          "astronaut": "astronaut.jpg", "camera": "camera.png"}
SPEECH = [  # (file, espeak-ng voice, words per minute, text)
    ("speech_en.wav", "en-gb-scotland", 150, "Every picture and every sound becomes a short row of numbers."),
    ("speech_de.flac", "de", 140, "Ein Bild sagt mehr als tausend Worte, aber hier sind es zweihundert."),
]


def images() -> None:
    import skimage.data

    for name, file in IMAGES.items():
        img = Image.fromarray(getattr(skimage.data, name)())
        scale = SIDE / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        img.save(HERE / file, **({"quality": 88} if file.endswith(".jpg") else {"optimize": True}))


def speak(voice: str, wpm: int, text: str) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
        return sf.read(wav, dtype="float32")


def sounds() -> None:
    for file, voice, wpm, text in SPEECH:
        wave, sr = speak(voice, wpm, text)
        sf.write(HERE / file, wave, sr)  # espeak-ng's 22,050 Hz: the tokenizer resamples to 16 kHz
    sr = 24_000
    t = np.arange(int(2.5 * sr)) / sr
    f = 220 * 2 ** (t / 1.25)  # two octaves up over 2.5 s, with two harmonics and a tremolo
    phase = 2 * np.pi * np.cumsum(f) / sr
    wave = (0.5 * np.sin(phase) + 0.2 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)) * (0.8 + 0.2 * np.sin(2 * np.pi * 5 * t))
    wave *= np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fades
    sf.write(HERE / "chirp.ogg", (0.6 * wave).astype(np.float32), sr, format="OGG", subtype="VORBIS")


def video(seconds: float = 6.0, fps: int = 12, size: tuple[int, int] = (192, 144)) -> None:
    """A camera panning across the astronaut picture, with the English speech as its soundtrack."""
    import av
    import skimage.data

    world = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((384, 384), Image.Resampling.LANCZOS))
    speech, sr = speak(SPEECH[0][1], SPEECH[0][2], SPEECH[0][3])
    n = int(seconds * fps)
    w, h = size
    with av.open(str(HERE / "pan.mp4"), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "30", "preset": "veryslow"}
        aus = c.add_stream("aac", rate=sr)
        aus.bit_rate = 32_000
        for i in range(n):
            x = round(i / (n - 1) * (world.shape[1] - w))
            y = round(i / (n - 1) * (world.shape[0] - h) * 0.5)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(world[y : y + h, x : x + w]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(vs.encode(frame))
        c.mux(vs.encode())
        audio = np.zeros(int(seconds * sr), np.float32)
        audio[: min(audio.size, speech.size)] = speech[: audio.size]
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        hop = 1024
        for k in range(0, pcm.size, hop):
            frame = av.AudioFrame.from_ndarray(pcm[None, k : k + hop], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, k, Fraction(1, sr)
            c.mux(aus.encode(frame))
        c.mux(aus.encode())


if __name__ == "__main__":
    images()
    sounds()
    video()
    for p in sorted(HERE.iterdir()):
        print(f"{p.name:>16}  {p.stat().st_size / 1024:7.1f} KiB")
