"""`mmtok train-tokenizer audio --data MANIFEST.jsonl`: the files of --split are trained on and the
manifest's validation split validated on, never its test split; a folder that holds a manifest is
refused; --resume keeps the split. And the seeded synthetic clips below 16 kHz are never silent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.corpus import synthetic_clips
from mmtok.audio.front_end import SAMPLE_RATE
from tests.test_audio import speechlike
from tests.test_audio_train_cli import _cli

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--crop-tokens", "8", "--batch-size", "2", "--warmup", "1", "--kmeans-vectors", "200", "--kmeans-iters", "2",
         "--kmeans-balance", "0", "--save-every", "1", "--threads", "1", "--seed", "3", "--no-progress",
         "--codebook-size", "16", "--encoder-channels", "16", "--decoder-channels", "16"]
SPLITS = {"train": 3, "validation": 2, "test": 2}


def _corpus(root: Path) -> Path:
    """A corpus as benchmarks/fetch_corpus.py lays it out: ROOT/audio/... and ROOT/manifest.jsonl. The test
    files are not audio at all, so a run that reads one fails."""
    lines = []
    for split, n in SPLITS.items():
        for i in range(n):
            path = Path("audio") / f"spk{i % 2}" / f"{split}-{i}.wav"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            if split == "test":
                (root / path).write_bytes(b"not audio")
            else:
                sf.write(root / path, speechlike(1.5, seed=80 + 10 * len(lines)), SAMPLE_RATE)
            lines.append(json.dumps({"path": path.as_posix(), "split": split, "source": "s", "group": f"spk{i % 2}"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root / "manifest.jsonl"


def test_folder_holding_a_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--data a corpus folder used to train on every file in it, the test split too; it is refused in one
    line (exit 2) that names the manifest to give instead, before anything is written."""
    manifest = _corpus(tmp_path / "corpus")
    rc, err = _cli(capsys, "--data", str(tmp_path / "corpus"), "--out", str(tmp_path / "run"), *SMALL, "--steps", "1")
    assert rc == 2, err
    assert f"give --data {manifest}" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra", [["--split", "train"], ["--make-data"], ["--val-fraction", "0.2"]])
def test_flags_at_odds_with_the_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 extra: list[str]) -> None:
    """--split with a folder, and --make-data or --val-fraction with a manifest: one line, exit 2."""
    manifest = _corpus(tmp_path / "corpus")
    data = tmp_path / "corpus" / "audio" if extra[0] == "--split" else manifest
    rc, err = _cli(capsys, "--data", str(data), "--out", str(tmp_path / "run"), *SMALL, "--steps", "1", *extra)
    assert rc == 2 and extra[0] in err and len(err.strip().splitlines()) == 1, err


def test_manifest_trains_on_its_split_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The train split is trained on, the validation split validated on (said in the log and the summary),
    the test split never read; --resume keeps the split, and another --split is refused."""
    from mmtok.audio.train import main

    manifest = _corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    assert main(["--data", str(manifest), "--out", str(out), *SMALL, "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "training on split 'train'" in err and "2 of the 2 files of split 'validation'" in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "train" and summary["train_files"] == SPLITS["train"]
    assert summary["validation_files"] == ["audio/spk0/validation-0.wav", "audio/spk1/validation-1.wav"]
    assert "'validation'" in summary["validated_on"] and summary["validation"]["clips"] == 2
    assert "2 groups over 3 files" in summary["codebook_groups"]
    rc, err = _cli(capsys, "--data", str(manifest), "--out", str(out), "--resume", "--steps", "2", "--split", "validation")
    assert rc == 2 and "--split validation (the run's: train)" in err, err
    assert main(["--data", str(manifest), "--out", str(out), "--resume", "--steps", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["split"] == "train"


def test_synthetic_clips_below_16_khz_are_not_silent() -> None:
    """At 8 kHz band-passed noise was drawn above Nyquist: 12 of 300 clips were all zeros."""
    clips = synthetic_clips(300, seed=0, sample_rate=8000)
    assert not [i for i, c in enumerate(clips) if not np.abs(c).max() > 0]


@pytest.mark.parametrize(("rate", "digest"), [(16000, "4597e837"), (22050, "17637612")])
def test_synthetic_clips_at_16_khz_and_above_are_unchanged(rate: int, digest: str) -> None:
    """The clips at 16 kHz and above, which the tests, the demo and the shipped figures rely on, are as
    they were (a digest of seeds 0-3, 20 clips each)."""
    h = hashlib.sha256()
    for seed in range(4):
        for c in synthetic_clips(20, seed=seed, sample_rate=rate):
            h.update(c.tobytes())
    assert h.hexdigest()[:8] == digest
