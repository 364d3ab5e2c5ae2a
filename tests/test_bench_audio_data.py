"""benchmarks/audio.py --data (the synthetic-corpus mode) and the usage and cache checks both audio
benchmarks share, on a tiny corpus with a tiny tokenizer."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sf = pytest.importorskip("soundfile")
from test_bench_audio import RATE, speechlike, tiny_tokenizer  # noqa: E402
from test_bench_peers import block, records  # noqa: E402

from mmtok.core.module_io import save_module  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audio as bench  # noqa: E402
import audio_quality as aq  # noqa: E402
from audio_baselines import usage_fields  # noqa: E402
from common import Timing  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def data_folder(root: Path, held: dict[str, float]) -> Path:
    """``train/`` with two 2 s clips and ``heldout/`` with ``held`` (name -> seconds)."""
    for split, files in (("train", {"a": 2.0, "b": 2.0}), ("heldout", held)):
        (root / split).mkdir(parents=True)
        for i, (name, seconds) in enumerate(files.items()):
            sf.write(root / split / f"{name}.wav", speechlike(seconds, f0=110 + 20 * i, seed=i), RATE)
    return root


@pytest.fixture(scope="module")
def tok_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_module(tiny_tokenizer(), tmp_path_factory.mktemp("tok") / "tok")


def test_usage_counts_distinct_codes_over_min_of_k_and_tokens() -> None:
    few = usage_fields(torch.tensor([2, 1, 1] + [0] * 29))  # 4 tokens, 3 distinct, K = 32
    assert few == {"usage": 0.75, "distinct": 3, "codebook_size": 32, "tokens": 4, "perplexity": few["perplexity"]}
    many = usage_fields(torch.tensor([100] * 8 + [0] * 24))  # tokens >> K: the share of the K codes, as before
    assert many["usage"] == 0.25 and many["tokens"] == 800 and many["perplexity"] == 8.0
    assert usage_fields(torch.zeros(8, dtype=torch.long))["usage"] == 0.0


def test_data_mode_without_espeak_files_and_few_tokens(tmp_path: Path, tok_folder: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """No held-out file named *espeak*, speed and memory skipped: no crash, and usage over min(K, tokens)."""
    data = data_folder(tmp_path / "data", {"c": 0.3})  # 15 tokens, fewer than K = 32
    assert bench.main(["--data", str(data), "--model", str(tok_folder), "--threads", "1",
                       "--skip", "reconstruction,speed,memory"]) == 0
    (usage,) = records(capsys)
    assert usage["bench"] == "codebook_usage" and usage["tokens"] == 15 and usage["codebook_size"] == 32
    assert usage["usage"] == round(usage["distinct"] / 15, 4)


def test_speed_clip_falls_back_to_every_held_out_clip() -> None:
    tok = tiny_tokenizer()
    a, b = torch.full((8000,), 0.1), torch.full((8000,), -0.1)
    clip, label = bench.speed_clip(tok, [Path("c.wav"), Path("d.wav")], [a, b])
    assert clip.shape == (240_000,) and label.startswith("all 2 held-out clips (none is named *espeak*)")
    clip, label = bench.speed_clip(tok, [Path("c.wav"), Path("espeak_d.wav")], [a, b])
    assert label.startswith("1 held-out clips named *espeak*") and float(clip[1000:-1000].max()) < 0


def test_data_mode_without_encodec_times_ours_and_measures_first_call_memory(
        tmp_path: Path, tok_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = data_folder(tmp_path / "data", {"c": 1.0})
    block(monkeypatch, tmp_path / "stubs", "encodec")
    assert bench.main(["--data", str(data), "--model", str(tok_folder), "--threads", "1", "--repeats", "1",
                       "--kmeans-vectors", "200", "--kmeans-iters", "2"]) == 0
    rows = records(capsys)
    assert rows[0]["bench"] == "encode_speed" and rows[0]["peer"] == "encodec"
    by = {(r["bench"], r.get("method")): r for r in rows[1:]}
    ours_l1 = by["reconstruction", "mmtok"]["rel_l1"]
    for name in ("encode_speed", "realtime_factor"):
        r = by[name, None]
        assert r["mmtok_rel_l1"] == ours_l1 and r["speed_clip"].startswith("all 1 held-out clips"), r
    speed = by["encode_speed", None]
    assert speed["mmtok_seconds"] > 0 and speed["encodec_seconds"] is None and speed["speedup"] is None
    mem = by["peak_memory", None]
    assert "mmtok_mb" not in mem and mem["encodec_first_encode_mib"] is None
    assert mem["mmtok_first_encode_mib"] >= 0 and mem["mmtok_second_encode_mib"] >= 0 and mem["measured_by"]


def test_speed_rows_say_when_reconstruction_was_skipped(tmp_path: Path, tok_folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = data_folder(tmp_path / "data", {"c": 1.0})
    block(monkeypatch, tmp_path / "stubs", "encodec")
    assert bench.main(["--data", str(data), "--model", str(tok_folder), "--threads", "1", "--repeats", "1",
                       "--skip", "reconstruction,memory"]) == 0
    speed = next(r for r in records(capsys) if r["bench"] == "realtime_factor")
    assert speed["mmtok_rel_l1"] is None and "--skip reconstruction" in speed["quality_note"]


def test_speed_rows_time_decode_as_often_as_encode(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repeats: list[int] = []  # decode was timed with repeats // 2 calls: one at --repeats 3
    peer: list[bool] = []

    def fake_sides(sides: dict[str, Any], *, repeats: int) -> dict[str, Timing]:
        return {name: fake_pair(repeats, encodec=False)["mmtok"] for name in sides}

    def fake_pair(*args: Any, encodec: bool = True) -> dict[str, Timing]:
        repeats.append(args[-1])  # encode_timings(tok, clip, repeats), decode_timings(tok, voc, codes, clip, repeats)
        peer.append(encodec)
        return {"mmtok": Timing((0.01,) * args[-1]), **({"encodec": Timing((0.1,) * args[-1])} if encodec else {})}

    monkeypatch.setattr(bench, "time_sides", fake_sides)
    monkeypatch.setattr(bench, "encode_timings", fake_pair)
    monkeypatch.setattr(bench, "decode_timings", fake_pair)
    args = argparse.Namespace(repeats=3, threads=1)
    clip = torch.zeros(24_000)
    for encodec in (False, True):
        bench.speed_rows(tiny_tokenizer(), clip, args, {}, encodec)
        assert repeats == [3, 3, 3], (encodec, repeats)  # encode, decode to waveform, decode to features
        assert peer == [encodec, encodec, False]
        repeats.clear()
        peer.clear()
    rows = records(capsys)
    assert [r["bench"] for r in rows] == ["encode_speed", "realtime_factor"] * 2
    speed = rows[2]  # with EnCodec: the ratio of the medians, labelled, each side's min, median and n beside
    assert speed["speedup"] == 10.0 and speed["ratio_of"] == "median"
    assert speed["timings"]["encodec"] == {"min_s": 0.1, "median_s": 0.1, "n": 3}
    assert rows[3]["decode_speedup_vs_encodec"] == 10.0 and rows[3]["ratio_of"] == "median"


def test_split_usage_counts_over_the_tokens_a_short_split_has(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", speechlike(0.3), RATE)
    row = aq.split_usage(tiny_tokenizer(), [{"path": "a.wav", "split": "x"}], tmp_path, "x")
    assert row["tokens"] == 15 and row["usage"] == round(row["distinct"] / 15, 4) and row["codebook_size"] == 32


def test_cache_check_warns_on_another_or_no_manifest_hash(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"path": "a.wav", "split": "train"}\n')
    cache = tmp_path / "cache"
    cache.mkdir()
    assert aq.cache_check(cache, manifest) is None  # no index yet: AudioCache says what is wrong
    (cache / "index.json").write_text(json.dumps({"format": "x"}))
    old = aq.cache_check(cache, manifest)
    assert old is not None and old["bench"] == "cache_check" and "records no manifest sha256" in old["warning"]
    (cache / "index.json").write_text(json.dumps({"manifest_sha256": "0" * 64}))
    other = aq.cache_check(cache, manifest)
    assert other is not None and "another version of the manifest" in other["warning"]
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    (cache / "index.json").write_text(json.dumps({"manifest_sha256": digest}))
    assert aq.cache_check(cache, manifest) is None
