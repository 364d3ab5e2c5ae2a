"""Pins that hold behaviour fixed while code moves: codes of the shipped tokenizers on fixed
inputs and the bytes of the shards of one fixed small corpus.

A change that alters a shipped model, the resampler or the shard format updates these pins in
the same commit and says why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def digest(codes: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(codes.numpy().astype(np.int64)).tobytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "head", "sha"),
    [
        ("astronaut.jpg", [1209, 1207, 1008, 1093, 1008, 592, 894, 248],
         "0ae292481049cf2eb6304dee184b1d21a8a3ddc124f432b24d04c0ff0a8f9424"),
        ("coffee.jpg", [653, 1116, 586, 809, 744, 462, 506, 506],
         "f3646d85484e92eff098916df7efa1aa2bebd2aab9a292df60282bfaa8c3ce17"),
    ],
)
def test_shipped_image_codes_are_pinned(name: str, head: list[int], sha: str) -> None:
    codes = mmtok.load("image").encode(str(DATA / name))
    assert tuple(codes.shape) == (16, 16)
    assert codes.flatten()[:8].tolist() == head
    assert digest(codes) == sha


def test_shipped_audio_codes_are_pinned() -> None:
    tok = mmtok.load("audio")
    wave = mmtok.load_audio(str(DATA / "speech_en.wav"), target_rate=tok.sample_rate)
    codes = tok.encode(wave, sample_rate=tok.sample_rate)
    assert tuple(codes.shape) == (206,)
    assert codes[:8].tolist() == [3581, 3581, 2891, 2891, 2891, 4103, 657, 3532]
    assert digest(codes) == "5a2286353c6a1cf046dfaa54d555773d153c728404d88af4709285b4f25196b2"


def test_shipped_video_codes_are_pinned() -> None:
    codes = mmtok.load("video").encode(str(DATA / "pan.mp4"))
    assert digest(codes) == VIDEO_SHA, (tuple(codes.shape), digest(codes))


VIDEO_SHA = "ddc112a38ef9985fcc853e5e770e02e7afac72930a546b3309d3cef0a7aabbc8"

SHARD_SHA = {
    "shard-00000.bin": "9fce211e69a98d5c6658e297401787433d2351b515d8b0274bd41380f7057cca",
    "shard-00001.bin": "6c3c42eba0077017c3564dbb9028a41ece582b8c0027989f2567c0c74ac69eb8",
}


def test_shards_of_a_fixed_corpus_are_pinned(tmp_path: Path) -> None:
    """Text, images, audio and a video with its soundtrack through the shipped tokenizers."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("astronaut.jpg", "camera.png", "speech_en.wav", "chirp.ogg", "pan.mp4"):
        shutil.copy(DATA / name, corpus / name)
    docs = [
        {"segments": [{"text": "an astronaut "}, {"image": "astronaut.jpg"}, {"text": " in orbit"}]},
        {"segments": [{"audio": "speech_en.wav"}, {"text": "spoken words"}]},
        {"segments": [{"text": "a camera man"}, {"image": "camera.png"}, {"audio": "chirp.ogg"}]},
        {"segments": [{"text": "a pan "}, {"video": "pan.mp4", "chunk_seconds": 1.0}]},
    ]
    (corpus / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "shards"
    spec = mmtok.TokenizerSpec(image="image", audio="audio", video="video")
    manifest = mmtok.tokenize_corpus(corpus / "docs.jsonl", out, tokenizers=spec, shard_tokens=600)
    assert manifest["docs"] == 4 and not manifest["skipped"]
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.bin"))}
    assert got == SHARD_SHA, json.dumps(got, indent=1)
