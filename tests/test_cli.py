"""The mmtok command: --version, --help, and the demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mmtok
from mmtok.cli import main


def test_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mmtok.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"mmtok {mmtok.__version__}"
    help_text = subprocess.run(
        [sys.executable, "-m", "mmtok.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "train-tokenizer"):
        assert command in help_text


def test_console_script_is_declared() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'mmtok = "mmtok.cli:main"' in text


def test_public_api_is_explicit() -> None:
    for name in mmtok.__all__:
        assert hasattr(mmtok, name), name
    for name in ("VectorQuantizer", "VQConfig", "load", "save", "MmtokError"):
        assert name in mmtok.__all__


DEMO_FIGURES = [
    "audio_decode_rtf", "audio_rel_l1", "audio_stream_lookahead_s", "audio_stream_max_diff", "audio_tokens_per_second",
    "corpus_docs", "corpus_docs_per_s",
    "corpus_tokens", "demo_seconds", "growth_tiny_sdpa_time_exponent", "image_codes_used", "image_psnr_db",
    "image_psnr_unseen_db", "image_ssim", "image_tokens", "plan_gemini_tokens_per_second",
    "plan_mmtok_tokens_per_second", "sample_image_color_match", "sample_tone_pitch_match", "stream_round_trip_exact", "stream_tokens",
    "train_loss_first", "train_loss_last", "train_tokens_per_s", "video_stream_tokens_per_second",
    "vq_encode_vectors_per_s", "vq_usage", "vq_usage_naive",
]


def test_demo_fast(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``mmtok demo --fast``: the page, every file it references, and numbers for every figure; the training
    throughput of a run that other work slowed (made to look so here) is kept but marked not reliable."""
    import math

    import soundfile as sf
    from PIL import Image

    import mmtok.demo.learn
    from mmtok.context.growth import CpuShare
    from mmtok.core.report import referenced_files

    class Busy(CpuShare):
        busy = True  # type: ignore[assignment]

    monkeypatch.setattr(mmtok.demo.learn, "CpuShare", Busy)
    out = tmp_path / "demo"
    from mmtok.core.memory import rss_mib

    # the budget is for the whole process: in a long test run this process already holds more than the CLI's
    # default 2 GiB would leave, and the growth figure pinned below would go unmeasured
    budget = f"{rss_mib() / 1024 + 2:.2f}"
    assert main(["demo", "--fast", "--out", str(out), "--json", "--max-memory", budget]) == 0
    page = out / "index.html"
    text = page.read_text(encoding="utf-8")
    for title in ("The VQ core", "Images → tokens → images", "Sound → tokens → sound", "One interleaved stream",
                  "A corpus in shards", "Training a tiny transformer", "Sampling media from text",
                  "Context budget for video", "Measured figures"):
        assert title in text, title
    assert "http://" not in text and "https://" not in text  # renders with no network
    refs = referenced_files(page)
    assert len(refs) >= 30
    for ref in refs:
        f = out / ref
        assert f.is_file() and f.stat().st_size > 0, ref
        if f.suffix == ".png":
            Image.open(f).verify()
        elif f.suffix == ".wav":
            pcm, _ = sf.read(str(f), dtype="int16")
            assert len(pcm) > 0 and int((abs(pcm.astype("int32")) >= 32767).sum()) == 0, f"{ref} clips"
    kinds = {Path(r).suffix for r in refs}
    assert {".png", ".wav"} <= kinds
    figures = json.loads((out / "figures.json").read_text())
    assert sorted(figures) == DEMO_FIGURES  # pinned: the page and its JSON keep these names
    for key, fig in figures.items():
        assert isinstance(fig["value"], (int, float)) and math.isfinite(fig["value"]), key
        assert f">{key}<" in text  # every figure is in the page's table
    assert figures["stream_round_trip_exact"]["value"] == 1
    assert figures["audio_stream_max_diff"]["value"] < 5e-3  # streamed pieces join into the whole decode
    assert 0 < figures["image_ssim"]["value"] <= 1 and "SSIM" in text
    assert "left out" in text and "0 hours" not in text and "Load average" in text
    assert figures["image_tokens"]["value"] == 256 and figures["image_psnr_db"]["value"] > 15
    assert figures["train_loss_last"]["value"] < figures["train_loss_first"]["value"]
    assert figures["train_tokens_per_s"]["reliable"] is False and "not reliable" in figures["train_tokens_per_s"]["what"]
    assert 0 <= figures["sample_image_color_match"]["value"] <= 1
    assert "level dBFS" in text  # sampled tones show how loud they came back, not only their pitch
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["steps"]) == ["VQ core", "images", "audio", "stream", "corpus", "train", "sample", "context"]
    assert "train_tokens_per_s" in summary["unreliable_figures"]
    said = capsys.readouterr()
    assert "[8/8] context:" in said.err and "index.html" in said.err
    assert json.loads(said.out)["figures"] == {k: v["value"] for k, v in figures.items()}




def test_demo_takes_only_a_new_empty_or_earlier_demo_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A folder with a user's files (a trained run, a page) is refused before anything is written: the demo
    rewrites its folder. An earlier demo's folder (its mark, or its summary.json) is taken."""
    from mmtok.demo.run import MARK, claim_out

    proj = tmp_path / "proj"
    (proj / "run" / "ckpt-00000500").mkdir(parents=True)
    (proj / "run" / "log.jsonl").write_text('{"step": 500}\n')
    before = sorted(str(p.relative_to(proj)) for p in proj.rglob("*"))
    assert main(["demo", "--fast", "--out", str(proj)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files the demo did not write (run, ...)" in err
    assert sorted(str(p.relative_to(proj)) for p in proj.rglob("*")) == before
    (tmp_path / "afile").write_text("mine")
    assert main(["demo", "--fast", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "mine"
    for bad in ("0", "-1", "nan", "inf", "lots"):
        with pytest.raises(SystemExit) as e:
            main(["demo", "--fast", "--out", str(tmp_path / "new"), "--max-memory", bad])
        assert e.value.code == 2 and "--max-memory" in capsys.readouterr().err
    for bad in ("-1", str(2**32), "1.5"):  # refused as parsed, not after minutes of work
        with pytest.raises(SystemExit) as e:
            main(["demo", "--fast", "--out", str(tmp_path / "new"), "--seed", bad])
        assert e.value.code == 2 and "argument --seed" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert claim_out(tmp_path / "new") == tmp_path / "new" and (tmp_path / "new" / MARK).is_file()
    (tmp_path / "new" / "index.html").write_text("the demo's page")
    assert claim_out(tmp_path / "new").is_dir()  # its own folder again
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps({"page": "x", "steps": {}, "figures": {}}))
    assert (claim_out(old) / MARK).is_file()  # a demo folder from before the mark


def test_demo_line_when_every_length_is_over_the_memory_budget() -> None:
    from mmtok.context.growth import Growth
    from mmtok.demo.budget import _context_line

    line = _context_line(Growth(series={"sdpa": []}, max_memory_gb=0.5), 7)
    assert line == "planned 7 presets; measured no length of sdpa: each would pass --max-memory 0.5 GiB"


def test_demo_hour_of_video_is_a_lower_bound_and_math_cannot_run() -> None:
    from types import SimpleNamespace

    from mmtok.demo.budget import _hour

    fit = SimpleNamespace(exponent=1.0, log_intercept=-9.0)
    # the T×T scores of every layer and head the math backend keeps (context.growth.math_scores_mib): 6 × 4 × 4 TB
    assert _hour("tiny math", fit, 1e6, 1024) == "cannot run: its 1,000,000×1,000,000 attention scores alone take 96 TB"
    assert _hour("tiny sdpa", fit, 1e6, 4096).startswith("at least ") and "244× past the longest length" in \
        _hour("tiny sdpa", fit, 1e6, 4096)


def test_demo_bad_data_folder_is_a_clear_error_before_writing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert main(["demo", "--fast", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing does not exist or is not a folder" in capsys.readouterr().err
    only_image = tmp_path / "pics"
    only_image.mkdir()
    (only_image / "a.png").write_bytes(b"not checked yet")
    assert main(["demo", "--fast", "--data", str(only_image), "--out", str(out)]) == 2
    assert "has no sounds" in capsys.readouterr().err
    assert not out.exists()  # nothing was written
