"""``mmtok eval``, ``mmtok info``, ``mmtok.load``, ``export-hf`` and code files: a file named twice is scored once,
an export is swapped into place whole, a training run is named as one, a PDF or SVG plot is replaced by the next,
a code file's fps and soundtrack are checked, info's nested rows, a repeat video's usage counts its repeat code,
and usage over ``min(K, tokens)`` is one function."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import CheckpointError, UsageError
from mmtok.core.metrics import usage_over
from mmtok.data.codes import load_codes, save_codes
from mmtok.data.media_files import expand_paths
from mmtok.evaluate import plot_scores
from mmtok.info import describe, format_info
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.pretrained import load_config
from mmtok.stream.text import ByteTokenizer
from mmtok.stream.vocab import Vocabulary
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained image tokenizer of 32×32 pictures, saved: quick to score with."""
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer

    torch.manual_seed(0)
    return mmtok.save(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(),
                      tmp_path_factory.mktemp("models") / "small")


# --------------------------------------------------------------------------- 1: a file named twice


def test_a_file_named_twice_is_scored_once_and_pairs_agree_with_the_means(
        small_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "dup"
    d.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", d / "coffee.jpg")
    shutil.copy(EXAMPLES / "camera.png", d / "camera.png")
    again = [d, d / "coffee.jpg", d / ".." / "dup" / "coffee.jpg"]
    assert [f.name for f, _ in expand_paths(again, tmp_path / "o", frozenset({".jpg", ".png"}))] == [
        "camera.png", "coffee.jpg"]
    assert main(["eval", *map(str, again), "--image", str(small_image), "--image", str(small_image), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len([r for r in rows if "file" in r]) == 4  # two files, two models
    summaries = [r for r in rows if "summary" in r]
    per_file = mmtok.load(small_image).encode(d / "coffee.jpg").numel()
    assert [s["files"] for s in summaries] == [2, 2] and summaries[0]["tokens"] == 2 * per_file
    (pair,) = [r for r in rows if "paired" in r]
    assert pair["items"] == 2 and pair["psnr_db"]["n"] == 2


# --------------------------------------------------------------------------- 2: export-hf swapped into place


def _tiny_run(folder: Path, seed: int = 0) -> Path:
    vocab = Vocabulary(256, ranges={"image": 40, "audio": 24})
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=1, n_head=2, n_kv_head=1, d_model=32, max_seq_len=32)
    tensors = {k: v.clone() for k, v in Transformer(cfg).state_dict().items()}
    save_checkpoint(folder / "ckpt-0000010", kind=Transformer.KIND, tensors=tensors,
                    config={"model": asdict(cfg), "vocab": vocab.to_dict()})
    return folder


def test_an_export_stopped_part_way_leaves_the_earlier_one_and_a_rerun_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.lm.hf as hf

    first, second = _tiny_run(tmp_path / "run"), _tiny_run(tmp_path / "run2", seed=1)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "hf"
    monkeypatch.setattr(hf, "llama_config", stop)
    with pytest.raises(KeyboardInterrupt):
        hf.export_hf(first, out)
    assert not out.exists()  # nothing half-written in its place
    monkeypatch.undo()
    hf.export_hf(first, out)  # the rerun is not refused
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(earlier) == ["config.json", "mmtok_vocab.json", "model.safetensors"]
    monkeypatch.setattr(hf, "llama_config", stop)
    with pytest.raises(KeyboardInterrupt):
        hf.export_hf(second, out)  # over the earlier export: stopped, it stays whole
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    hf.export_hf(second, out)
    assert (out / "model.safetensors").read_bytes() != earlier["model.safetensors"]
    monkeypatch.chdir(out)
    with pytest.raises(UsageError, match="current folder"):
        hf.export_hf(first, ".")


def test_an_export_killed_part_way_is_finished_by_the_next(tmp_path: Path) -> None:
    run, out = _tiny_run(tmp_path / "run"), tmp_path / "hf"
    killed = ("import os, signal, sys\nimport mmtok.lm.hf as hf\n"
              "hf.llama_config = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"  # after model.safetensors
              "hf.export_hf(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.run([sys.executable, "-c", killed, str(run), str(out)], cwd=ROOT, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".hf.tmp-")]
    assert main(["export-hf", "--run", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "mmtok_vocab.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]  # the killed one's temporary folder is gone


# --------------------------------------------------------------------------- 3: a training run is not a checkpoint


def test_load_names_a_training_run_and_what_loads_it(tmp_path: Path) -> None:
    run = _tiny_run(tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"training run of 'mmtok train'.*mmtok\.load_run\("):
        mmtok.load(run)
    ckpt = run / "ckpt-0000010"
    for call in (mmtok.load, load_config):
        with pytest.raises(CheckpointError, match=rf"{re.escape(str(ckpt))}.*kind 'transformer'.*"
                                                  rf"mmtok\.load_run\('{re.escape(str(ckpt))}'\)"):
            call(ckpt)
    trun = tmp_path / "trun"
    mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), trun / "train-state")
    with pytest.raises(CheckpointError, match="has not exported its model"):
        mmtok.load(trun)
    mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), trun / "model")
    why = f"{trun} is a tokenizer training run, not a checkpoint: load {trun / 'model'}"
    with pytest.raises(CheckpointError, match=f"^{re.escape(why)}$"):
        mmtok.load(trun)
    with pytest.raises(CheckpointError, match=r"has no config\.json"):  # any other folder: as before
        mmtok.load(tmp_path)


# --------------------------------------------------------------------------- 4: PDF and SVG plots are marked


def test_a_pdf_or_svg_plot_is_replaced_by_the_next_and_a_users_is_not(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"file": "a.jpg", "kind": "image", "model": "m", "psnr_db": 20.0, "ssim": 0.5}]
    for ext in ("pdf", "svg", "eps"):
        plot = tmp_path / f"scores.{ext}"
        assert plot_scores(rows, plot) == plot_scores(rows, plot) == plot  # the second replaces the first
        fig = plt.figure(figsize=(1, 1))
        fig.savefig(tmp_path / f"user.{ext}")  # matplotlib's own Creator: not a plot of mmtok eval
        plt.close(fig)
        with pytest.raises(UsageError, match="is not a plot that 'mmtok eval' drew"):
            plot_scores(rows, tmp_path / f"user.{ext}")


# --------------------------------------------------------------------------- 5: a code file's fps and soundtrack


def _video_codes(path: Path, *, fps: object = 1.0, frames: int = 2, sound_tokens: int | None = 300,
                 seconds: float = 6.0, rate: int = 50) -> Path:
    meta = {"kind": "video", "model": "video", "fingerprint": "ab", "codebook_size": 8, "fps": fps}
    audio = None
    if sound_tokens is not None:
        meta["audio"] = {"kind": "audio", "fingerprint": "cd", "tokens_per_second": rate, "seconds": seconds}
        audio = np.zeros(sound_tokens, np.int64)
    return save_codes(path, np.zeros((frames, 2, 2), np.int64), meta, audio)


@pytest.mark.parametrize("fps", [0, -1, "abc", float("nan"), float("inf"), True, None])
def test_a_video_code_files_fps_must_be_a_number_above_zero(tmp_path: Path, fps: object) -> None:
    path = _video_codes(tmp_path / "v.mp4.npz", fps=fps)
    with pytest.raises(UsageError, match=rf"^{re.escape(str(path))}: its meta gives fps .*, not a number of frames "
                                         "per second above 0"):
        load_codes(path)


def test_a_soundtrack_must_hold_as_many_codes_as_its_recorded_length(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # 6 s of sound beside 2 frames at 1 fps: a file's audio and video streams may end apart
    assert load_codes(_video_codes(tmp_path / "ok.mp4.npz")).audio_codes.size == 300
    # encode writes the length rounded to the millisecond: 1 token at 75 per second is 0.013 s
    one = _video_codes(tmp_path / "ms.mp4.npz", sound_tokens=1, seconds=0.013, rate=75)
    assert load_codes(one).audio_codes.size == 1
    with pytest.raises(UsageError, match="holds 2 codes"):
        load_codes(_video_codes(tmp_path / "two.mp4.npz", sound_tokens=2, seconds=0.013, rate=75))
    long = _video_codes(tmp_path / "long.mp4.npz", sound_tokens=6000)  # 120 s of codes, 6 s recorded
    with pytest.raises(UsageError, match=r"holds 6000 codes \(120 s at 50 tokens per second\), but its meta says 6 s"):
        load_codes(long)
    bare = tmp_path / "bare.mp4.npz"
    save_codes(bare, np.zeros((2, 2, 2), np.int64), {"kind": "video", "fps": 1.0}, np.zeros(5, np.int64))
    with pytest.raises(UsageError, match="no tokens_per_second and seconds"):
        load_codes(bare)
    zero = _video_codes(tmp_path / "zero.mp4.npz", fps=0)
    assert main(["decode", str(long), str(zero), "--out", str(tmp_path / "back")]) == 2  # each one line, exit 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[0].startswith(f"mmtok: error: {long}: its soundtrack") and "fps 0" in err[1]
    assert not (tmp_path / "back").exists() or not any((tmp_path / "back").iterdir())
    shutil.copy(EXAMPLES / "coffee.jpg", tmp_path / "a.jpg")  # a code file decode refuses is encode's to replace
    _video_codes(tmp_path / "out" / "a.jpg.npz", fps=0)
    assert main(["encode", str(tmp_path / "a.jpg"), "--out", str(tmp_path / "out")]) == 0
    assert load_codes(tmp_path / "out" / "a.jpg.npz").meta["kind"] == "image"


# --------------------------------------------------------------------------- 6: info


def test_info_of_a_tokenizer_run_shows_its_model_without_empty_rows(tmp_path: Path) -> None:
    trun = tmp_path / "trun"
    for sub in ("train-state", "model"):
        mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), trun / sub)
    text = format_info(describe(trun))
    model = text.split("\n  model\n")[1].splitlines()
    assert "None" not in text and not [x for x in model if x.split()[0] in ("what", "path", "read_from")]
    assert model[0].split() == ["kind", "vq"]
    # (the train state here is weights only, so a long "damaged" row wraps: its lines under the value column)
    rows = [re.match(r"( {2}(?: {2})?\S+ +)\S", line) for line in text.splitlines()[1:]]
    assert len({len(m[1]) for m in rows if m}) == 1  # one column of values, nested rows too


def test_the_shipped_video_is_named_as_what_it_is_built_from() -> None:
    assert describe("video")["path"] == "video (the shipped image tokenizer at 1 frame per second)"
    image = mmtok.load("image")
    vocab = Vocabulary.for_tokenizers(text=ByteTokenizer(), image=image, video=mmtok.load("video"))
    assert vocab.labels["video"] == f"video: {image.checkpoint_label} at 1 fps"
    bare = Vocabulary(256, ranges={"video": 8}, sources={"text": "byte", "video": "0123abcd"})
    from mmtok.info_export import vocab_tokenizers

    assert vocab_tokenizers(bare)["video"] == "8 ids (a tokenizer of fingerprint 0123abcd)"


# --------------------------------------------------------------------------- 7: a repeat video's usage


def test_a_repeat_video_counts_the_codes_it_gave_its_repeat_code_among_them(
        small_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av")
    from mmtok.video.tokenizer import VideoTokenizer
    from mmtok.video.write import write_video

    tok = VideoTokenizer(mmtok.load(small_image), fps=1.0, temporal="repeat")
    model = mmtok.save(tok, tmp_path / "vrep")
    clip = tmp_path / "still.mp4"
    with open(clip, "wb") as f:  # one grey picture for three seconds
        write_video(f, torch.full((3, 3, 32, 32), 0.5), fps=1.0)
    assert main(["eval", str(clip), "--video", str(model), "--json"]) == 0
    (summary,) = [r for r in _json_lines(capsys.readouterr().out) if r.get("summary") == "video"]
    codes = mmtok.load(model).encode(clip)
    assert int((codes == tok.repeat_id).sum()) > 0  # the still frames after the first repeat the first
    assert summary["codebook_size"] == tok.codebook_size and summary["tokens"] == codes.numel()
    assert summary["codes_used"] == codes.unique().numel()


# --------------------------------------------------------------------------- 8: usage over min(K, tokens)


def test_usage_over_min_k_tokens_is_one_function_for_eval_and_the_benchmarks() -> None:
    for path in (ROOT / "mmtok").rglob("*.py"), (ROOT / "benchmarks").glob("*.py"):  # defined once, in core.metrics
        for f in path:
            text = f.read_text(encoding="utf-8")
            assert "def usage_over" not in text or f == ROOT / "mmtok" / "core" / "metrics.py", f
    assert usage_over(torch.tensor([2, 1, 0, 0, 0, 0])) == (2 / 3, 2, 3)
    assert usage_over(torch.zeros(4, dtype=torch.long)) == (0.0, 0, 0)
