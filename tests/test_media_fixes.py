"""Audio arrays too short for one sample at the target rate, digital silence said once by a corpus run (with a
count in the manifest that survives a resume), and MPEG program streams (.mpg) among the video suffixes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio.io import SilenceWarning, load_audio
from mmtok.core.errors import AudioError, UsageError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.media_files import MEDIA_SUFFIXES, expand_paths, media_kind
from mmtok.data.tokenizer_spec import TokenizerSpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = TokenizerSpec(audio="tests.test_media_fixes:HeardLoudness")
SILENT = 7  # silent clips in the corpus


class HeardLoudness:
    """A deterministic audio tokenizer that reads files with :func:`load_audio`: each 25 ms frame's RMS on 16 levels."""

    codebook_size = 16
    fingerprint = "heard-loudness-v1"

    def encode(self, x: Any, sample_rate: int | None = None) -> torch.Tensor:
        wave = load_audio(x, sample_rate)  # (S,) at 16 kHz
        frames = wave[: wave.numel() // 400 * 400].reshape(-1, 400)  # (F, 400)
        return (frames.pow(2).mean(1).sqrt() * 16).long().clamp(0, 15)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float().repeat_interleave(400) / 16


def silent_corpus(folder: Path) -> Path:
    """``SILENT`` silent clips and one loud one, each in its own document, and a document that is skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for k in range(SILENT):
        sf.write(folder / f"s{k}.wav", np.zeros(1600, np.float32), 16000, subtype="PCM_16")
        docs.append({"segments": [f"clip {k}", {"audio": f"s{k}.wav"}]})
    sf.write(folder / "loud.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 1600).astype(np.float32), 16000)
    docs.insert(3, {"segments": ["loud", {"audio": "loud.wav"}]})
    docs.insert(5, {"segments": ["gone", {"audio": "missing.wav"}]})
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def tokenized(corpus: Path, out: Path, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    """The manifest of ``tokenize_corpus`` and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = tokenize_corpus(corpus, out, tokenizers=SPEC, shard_tokens=20, **kw)
    return manifest, [str(w.message) for w in caught]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


# --------------------------------------------------------------------------- arrays too short for one sample


def test_an_array_under_one_sample_at_the_target_rate_is_refused_as_a_file_is(tmp_path: Path) -> None:
    path = tmp_path / "one.wav"
    sf.write(path, np.full(1, 0.1, np.float32), 44_101, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"audio file {path} holds 1 sample at 44101 Hz: under one sample at 16000 Hz"
    for x in (np.full(1, 0.1, np.float32), torch.full((1,), 0.1)):
        with pytest.raises(AudioError) as e:
            load_audio(x, 44_101)  # before: an empty tensor
        assert str(e.value) == "audio array of shape (1,) holds 1 sample at 44101 Hz: under one sample at 16000 Hz"
    with pytest.raises(AudioError) as e:
        load_audio(np.zeros((1, 2), np.int16), 48_001, target_rate=8000)  # [C, S]: two samples of one channel
    assert str(e.value) == "audio array of shape (1, 2) holds 2 samples at 48001 Hz: under one sample at 8000 Hz"
    with pytest.raises(AudioError, match=r"^audio array is empty \(zero samples\)$"):
        load_audio(np.zeros(0, np.float32), 44_101)
    assert load_audio(np.full(2, 0.1, np.float32), 44_101).numel() == 1
    assert load_audio(np.full(1, 0.1, np.float32), 44_101, target_rate=44_101).numel() == 1


# --------------------------------------------------------------------------- digital silence, once per run


def test_one_file_of_silence_still_warns_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.warns(SilenceWarning, match=rf"^audio file {path} is digital silence") as caught:
        load_audio(path)
    assert [w.message.path for w in caught] == [str(path)]  # type: ignore[union-attr]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_corpus_run_says_its_silent_files_once_and_counts_them(tmp_path: Path, workers: int) -> None:
    corpus = silent_corpus(tmp_path / "c")
    manifest, said = tokenized(corpus, tmp_path / "out", workers=workers)  # before: one warning per silent file
    assert said == [f"{SILENT} audio files are digital silence once mixed to mono (every sample 0; tokenized as one "
                    "code repeated): s0.wav, s1.wav, s2.wav, s3.wav, s4.wav and 2 more"]
    assert manifest["silent_audio"] == SILENT and manifest["docs"] == SILENT + 1 and len(manifest["skipped"]) == 1
    listed = [s for ix in sorted((tmp_path / "out").glob("shard-*.json"))
              for s in json.loads(ix.read_text())["silent_audio"]]
    assert [s["file"] for s in listed] == [f"s{k}.wav" for k in range(SILENT)]
    assert [s["line"] for s in listed] == [1, 2, 3, 5, 7, 8, 9]  # the loud clip is line 4, the skipped document 6


def test_the_command_prints_one_line_for_the_silent_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.cli import main

    corpus = silent_corpus(tmp_path / "c")
    monkeypatch.chdir(ROOT)  # where tests.test_media_fixes imports from
    assert main(["tokenize", str(corpus), "--out", str(tmp_path / "out"), "--audio", SPEC.audio or "",
                 "--quiet"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "silence" in ln]
    assert lines == [f"mmtok: warning: {SILENT} audio files are digital silence once mixed to mono (every sample 0; "
                     "tokenized as one code repeated): s0.wav, s1.wav, s2.wav, s3.wav, s4.wav and 2 more"]


def test_a_resumed_run_counts_the_silence_of_the_shards_before_it(tmp_path: Path) -> None:
    corpus = silent_corpus(tmp_path / "c")
    whole, _ = tokenized(corpus, tmp_path / "whole")
    out = tmp_path / "out"
    tokenized(corpus, out)
    shards = sorted(out.glob("shard-*.json"))
    assert len(shards) > 2
    for path in (out / "manifest.json", shards[-1], shards[-1].with_suffix(".bin")):  # as a run killed there
        path.unlink()
    resumed, said = tokenized(corpus, out)
    assert resumed == whole and resumed["silent_audio"] == SILENT
    assert files(out) == files(tmp_path / "whole")
    assert len(said) == 1 and said[0].startswith(f"{SILENT} audio files are digital silence")


# --------------------------------------------------------------------------- MPEG program streams


def test_a_folder_walk_takes_mpeg_program_streams_as_video_and_they_decode(tmp_path: Path) -> None:
    from mmtok.video.read import read_video
    from tests.test_video import write_video

    folder = tmp_path / "clips"
    folder.mkdir()
    grey = np.stack([np.full((48, 64, 3), 20 * k, np.uint8) for k in range(10)])  # (N, H, W, 3): frame k at 20 k
    write_video(folder / "a.mpg", grey, [k / 25 for k in range(10)], codec="mpeg1video", rate=25)  # MPEG-1 program stream
    write_video(folder / "b.MPEG", grey, [k / 25 for k in range(10)], codec="mpeg2video", rate=25)
    (folder / "app.ts").write_text("export const x = 1;\n")  # TypeScript, not a transport stream
    found = [p.name for p, _ in expand_paths([folder], tmp_path / "out", MEDIA_SUFFIXES)]
    assert found == ["a.mpg", "b.MPEG"]  # before: both skipped as "of a kind mmtok does not read"
    assert media_kind(folder / "a.mpg") == media_kind(folder / "b.MPEG") == "video"
    clip = read_video(folder / "a.mpg", fps=25)
    assert tuple(clip.frames.shape) == (10, 3, 48, 64)
    levels = clip.frames.mean((1, 2, 3)) * 255
    assert torch.allclose(levels, torch.arange(10) * 20.0, atol=4)
    with pytest.raises(UsageError, match=r"app\.ts: not an image, a sound or a video .*rename them \.m2ts"):
        media_kind(folder / "app.ts")
