"""The context planner against real interleaved output: video cut by ``chunk_seconds``, its rates, the windows
that hold it, and the growth benchmark's own planner check."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mmtok.cli import main
from mmtok.context import planner
from mmtok.context.planner import mmtok_preset
from mmtok.context.shipped import plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import context_growth as cg

CLIP = Path(__file__).parents[1] / "examples" / "data" / "pan.mp4"  # 6 frames at 1 fps, 6.0 s of AAC sound


def _write_clip(path: Path, *, fps: int, seconds: float, size: tuple[int, int], sound: bool) -> Path:
    """An H.264 clip of ``seconds`` at ``fps`` (moving bars), with a 16 kHz AAC tone when ``sound``."""
    av = pytest.importorskip("av")
    w, h = size
    n = round(seconds * fps)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=16000) if sound else None
        for i in range(n):
            img = np.full((h, w, 3), (i * 7) % 255, np.uint8)
            img[:, : (i * 5) % w] = 200
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode(None))
        if a is not None:
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)
            for k in range(0, x.size, 1024):
                fr = av.AudioFrame.from_ndarray(x[None, k : k + 1024], format="fltp", layout="mono")
                fr.sample_rate, fr.pts = 16000, k
                c.mux(a.encode(fr))
            c.mux(a.encode(None))
    return path


def _media_tokens(il, doc) -> int:
    from mmtok.stream.vocab import Modality

    written = il.encode(doc).modality
    return int(((written == Modality.VIDEO) | (written == Modality.AUDIO)).sum())


@pytest.mark.parametrize("chunk", [1.0, 2.0, 0.7])
def test_chunked_plan_counts_what_the_interleaver_writes(chunk: float) -> None:
    """examples/docs.jsonl cuts pan.mp4 by chunk_seconds: every further chunk adds <bov> <eov> <boa> <eoa>."""
    pytest.importorskip("av")
    import mmtok

    il = mmtok.Interleaver(None, audio=mmtok.load("audio"), video=mmtok.load("video"))
    got = _media_tokens(il, [{"video": str(CLIP), "chunk_seconds": chunk}])
    assert plan(6.0, preset="mmtok", chunk_seconds=chunk).total_tokens == got
    if chunk == 1.0:
        assert got == plan(6.0, preset="mmtok").total_tokens + 5 * 4  # 6 chunks: five more sets of markers


def test_chunked_plan_of_a_generated_clip_at_another_fps(tmp_path: Path) -> None:
    """25 fps clip of 3.2 s sampled at 2.5 fps in 1 s chunks: 3 frames (1.2 s) a chunk, the last one short."""
    import mmtok

    clip = _write_clip(tmp_path / "c.mp4", fps=25, seconds=3.2, size=(96, 64), sound=True)
    il = mmtok.Interleaver(None, audio=mmtok.load("audio"),
                           video=mmtok.VideoTokenizer(mmtok.load("image"), fps=2.5))
    got = _media_tokens(il, [{"video": str(clip), "chunk_seconds": 1.0}])
    p = plan(3.2, preset="mmtok", fps=2.5, chunk_seconds=1.0)
    assert p.frames == 8 and p.total_tokens == got


def test_chunked_rates_include_each_chunks_markers() -> None:
    """Ten hours in 1 s chunks: 273 video + 50 audio + 4 markers a second, and the rates say so."""
    p = plan(36_000, preset="mmtok", chunk_seconds=1.0)
    if p.audio_tokens_per_second == 0:
        pytest.skip("no shipped audio tokenizer")
    per_s = p.tokens_per_frame + 2 + 50 + 2
    assert p.total_tokens == 36_000 * per_s and p.tokens_per_second == per_s
    assert (p.video_tokens_per_second, p.audio_tokens_per_second) == (p.tokens_per_frame + 2, 52.0)
    assert p.to_dict()["chunk_seconds"] == 1.0
    one = plan(36_000, preset="mmtok")
    assert one.total_tokens == 36_000 * (p.tokens_per_frame + 50) + 4 and one.chunk_seconds is None


def test_windows_hold_what_a_chunked_plan_fits() -> None:
    preset = mmtok_preset(image_size=64, downsample=16, audio_tokens_per_second=50.0)
    for chunk in (0.5, 1.0, 3.0):
        p = planner.plan(1, preset=preset, chunk_seconds=chunk, fps=2.0)
        for w in p.windows:
            assert planner.plan(w.seconds, preset=preset, chunk_seconds=chunk, fps=2.0).total_tokens <= w.tokens
            longer = w.seconds * (1 + 1e-7) + 1e-9
            assert planner.plan(longer, preset=preset, chunk_seconds=chunk, fps=2.0).total_tokens > w.tokens


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "1"])
def test_chunk_seconds_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"chunk_seconds \(--chunk-seconds\) must be a number above 0"):
        planner.plan(10, preset="lwm", chunk_seconds=bad)  # type: ignore[arg-type]


def test_chunk_seconds_is_refused_for_temporal_compression(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="does not apply to preset 'cosmos'"):
        planner.plan(10, preset="cosmos", chunk_seconds=1.0)
    assert main(["context", "60", "--preset", "cosmos", "--chunk-seconds", "1"]) == 2
    assert "--chunk-seconds" in capsys.readouterr().err


def test_cli_chunk_seconds_in_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["context", "1:00", "--preset", "lwm", "--chunk-seconds", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["chunk_seconds"] == 2.0 and d["total_tokens"] == 60 * 257  # lwm has no per-video markers to repeat
    assert main(["context", "8760h", "--preset", "gemini"]) == 0
    out = capsys.readouterr().out
    assert "31,536,000 s at 1 fps" in out and "e+07" not in out  # a year, not 3.1536e+07
    assert main(["context", "60", "--preset", "mmtok", "--chunk-seconds", "1"]) == 0
    assert "in chunks of 1 s" in capsys.readouterr().out


def test_preset_notes_say_what_the_published_figure_leaves_out() -> None:
    assert "metadata" in plan(60, preset="gemini").note
    assert "begin/end-of-image" in plan(1, preset="chameleon").note


def test_growth_benchmark_durations_and_planned_tokens(tmp_path: Path) -> None:
    """At 2.5 fps a "1 s" chunk holds 3 frames, 1.2 s: the tokenize rows say 1.2 s, and the planner's count for
    that many seconds equals the stream's."""
    import mmtok

    clip = _write_clip(tmp_path / "c.mp4", fps=25, seconds=4.8, size=(96, 64), sound=True)
    vt = mmtok.VideoTokenizer(mmtok.load("image"), fps=2.5)
    il = mmtok.Interleaver(None, video=vt, audio=mmtok.load("audio"))
    rec = cg.Recorder()
    streams = cg.interleave_durations(il, cg.tokenize_file(vt, clip, 4.8, rec), rec, 4.8)
    rows = [r for r in rec.rows if r["bench"] == "tokenize"]
    assert [r["duration_s"] for r in rows] == [1.2, 2.4, 4.8] == [d for d, _ in streams]
    assert [r["planned_tokens"] for r in rows] == [r["stream_tokens"] for r in rows]


def test_measured_step_flops_count_the_tokens_the_step_reads() -> None:
    """A step over ids [L] reads L - 1 of them (it predicts ids[1:]): its FLOPs are those of L - 1 tokens."""
    import torch

    from mmtok.context.growth import measure_step
    from mmtok.lm.model import ModelConfig, Transformer

    row = measure_step("tiny", "sdpa", torch.arange(65) % 256, 256)
    net = Transformer(ModelConfig.preset("tiny", vocab_size=256, max_seq_len=65))
    assert row["train_flops"] == 64 * net.flops_per_token(64)
