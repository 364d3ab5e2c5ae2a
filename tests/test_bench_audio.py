"""benchmarks/audio.py --manifest (benchmarks/audio_quality.py): DNSMOS, STOI, the clip picker, the
baselines' training slices, the bar, and one end-to-end run on a tiny corpus with a tiny tokenizer."""

from __future__ import annotations

import functools
import itertools
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pystoi")
pytest.importorskip("onnxruntime")
pytest.importorskip("speechmos")
sf = pytest.importorskip("soundfile")

from mmtok.audio import scores as speech_quality  # noqa: E402
from mmtok.audio.config import AudioTokenizerConfig  # noqa: E402
from mmtok.audio.tokenizer import AudioTokenizer  # noqa: E402
from mmtok.audio.vocoder import Vocoder  # noqa: E402
from mmtok.audio.vocoder_config import VocoderConfig  # noqa: E402
from mmtok.audio.vocoder_data import AudioCache, build_cache  # noqa: E402
from mmtok.core.metrics import paired_difference  # noqa: E402
from mmtok.core.module_io import save_module  # noqa: E402
from mmtok.vq.quantizer import VQConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audio as bench  # noqa: E402
import audio_bands  # noqa: E402
import audio_clips  # noqa: E402
import audio_lengths  # noqa: E402
import audio_levels  # noqa: E402
import audio_quality as aq  # noqa: E402
import peak_memory  # noqa: E402
from audio_baselines import slices  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
RATE = 16_000


def speechlike(seconds: float, f0: float = 130.0, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding f0 under formant-like peaks and a 4 Hz syllable envelope, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(f) / RATE
    x = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        if fk > 7000:
            break
        gain = sum(np.exp(-(((fk - fm) / 180.0) ** 2)) for fm in (600.0, 1200.0, 2500.0)) + 0.05
        x += gain / k**0.5 * np.sin(k * phase)
    env = np.clip(np.sin(2 * np.pi * 2.0 * t + seed), 0, None) ** 0.7  # syllables and short pauses
    x = env * x / np.abs(x).max()
    return (0.3 * x + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


# --------------------------------------------------------------------------- metrics


def test_dnsmos_is_deterministic_bounded_and_tiles_short_clips() -> None:
    x = speechlike(1.2)
    a, b = speech_quality.dnsmos(x), speech_quality.dnsmos(x.copy())
    assert a == b and set(a) == {"sig", "bak", "ovrl"}
    assert all(1.0 <= v <= 5.0 for v in a.values()), a
    tiled = np.tile(x, 8)  # 1.2 s doubled until ≥ 9.01 s: 9.6 s, one window, the same input
    assert speech_quality.dnsmos(tiled) == pytest.approx(a, abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        speech_quality.dnsmos(np.zeros(0, np.float32))


def test_dnsmos_prefers_clean_speech_to_speech_in_loud_noise() -> None:
    x = speechlike(3.0, seed=1)
    noisy = x + 0.3 * np.random.default_rng(0).standard_normal(x.size).astype(np.float32)  # about -6 dB SNR
    clean, bad = speech_quality.dnsmos(x), speech_quality.dnsmos(noisy)
    assert clean["bak"] > bad["bak"] + 0.5 and clean["ovrl"] > bad["ovrl"] + 0.3, (clean, bad)


def test_stoi_of_a_clip_itself_is_one_and_of_noise_low() -> None:
    ref = torch.from_numpy(speechlike(2.0, seed=2))
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(ref.numel()).astype(np.float32))
    scores = [speech_quality.stoi_score(ref, deg) for deg in (ref, ref + 0.01 * noise, ref + 0.3 * noise, 0.1 * noise)]
    assert scores[0] == pytest.approx(1.0, abs=1e-3)
    assert scores[1] > 0.85 and scores[0] > scores[1] > scores[2]
    # noise alone stays well under: STOI's clipping step (noise held below 1.18x the clean band envelope)
    # gives unrelated noise about 0.5 on a deeply modulated signal like this one, not 0
    assert scores[3] < 0.65
    # too little speech left once pystoi drops silent frames: no score (NaN), not its 1e-5
    blip = torch.zeros(16000)
    blip[:1600] = ref[:1600]
    assert math.isnan(speech_quality.stoi_score(blip, blip))
    summary = aq.summarize([{"stoi": 0.8}, {"stoi": math.nan}])
    assert summary["stoi"] == 0.8 and summary["stoi_clips"] == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # pesq scales silence by 0/0
def test_pesq_of_a_clip_itself_is_high() -> None:
    pytest.importorskip("pesq")
    ref = torch.from_numpy(speechlike(3.0, seed=3))
    assert speech_quality.pesq_wb(ref, ref) > 4.0
    assert math.isnan(speech_quality.pesq_wb(ref * 0, ref * 0))  # no utterance: NaN, not an exception


def test_bar_marks_pass_fail_and_missing() -> None:
    good = {"stoi": 0.85, "pesq_wb": 1.6, "dnsmos_ovrl": 2.5, "stoi_minus_kmeans": 0.05, "pesq_wb_minus_kmeans": 0.1,
            "encode_speedup_vs_encodec": 40.0, "decode_x_realtime": 25.0, "size_mb": 30.0}
    row = aq.bar_row(good)
    assert row["bench"] == "bar" and row["passed"] == len(aq.BAR) and row["failed"] == 0 and row["missing"] == []
    assert row["checks"]["stoi"] == {"figure": 0.85, "need": ">= 0.8", "pass": True}
    edge = {**good, "stoi": 0.80, "pesq_wb_minus_kmeans": 0.0, "size_mb": 40.5, "decode_x_realtime": None}
    checks = aq.bar_row(edge)["checks"]
    assert checks["stoi"]["pass"] is True  # ≥ holds at the bar
    assert checks["pesq_beats_kmeans"]["pass"] is False  # a tie does not beat k-means
    assert checks["size_mb"]["pass"] is False and checks["decode_x_realtime"]["pass"] is None
    assert aq.bar_row(edge)["missing"] == ["decode_x_realtime"]


# --------------------------------------------------------------------------- picking clips


def manifest_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for group, n in (("A", 5), ("B", 2), ("C", 1)):
        rows += [{"path": f"{group}{i}.wav", "source": "s", "group": group, "kind": "speech", "split": "validation",
                  "seconds": 1.0 + 1.5 * i} for i in range(n)]
    rows += [{"path": "short.wav", "source": "s", "group": "A", "kind": "speech", "split": "validation", "seconds": 0.9},
             {"path": "long.wav", "source": "s", "group": "B", "kind": "speech", "split": "validation", "seconds": 13.5},
             {"path": "music.wav", "source": "s", "group": "C", "kind": "music", "split": "validation", "seconds": 3},
             {"path": "test.wav", "source": "s", "group": "D", "kind": "speech", "split": "test", "seconds": 3}]
    return rows


def test_paired_difference_resamples_the_items_and_skips_what_was_not_scored() -> None:
    rng = np.random.default_rng(0)
    a = [{"stoi": float(v), "pesq_wb": 1.0} for v in rng.normal(0.8, 0.05, 40)]
    b = [{"stoi": r["stoi"] - float(e), "pesq_wb": math.nan if i == 3 else 1.0}
         for i, (r, e) in enumerate(zip(a, rng.normal(0.01, 0.02, 40), strict=True))]
    r = paired_difference(a, b, ["stoi", "pesq_wb", "absent"], seed=1)
    assert r == paired_difference(a, b, ["stoi", "pesq_wb", "absent"], seed=1) and "absent" not in r
    d = np.array([x["stoi"] - y["stoi"] for x, y in zip(a, b, strict=True)])
    assert r["stoi"]["mean"] == pytest.approx(d.mean(), abs=1e-4) and r["stoi"]["wins"] == int((d > 0).sum())
    lo, hi = r["stoi"]["ci95"]
    se = d.std(ddof=1) / math.sqrt(d.size)  # the bootstrap interval is about the normal one
    assert lo < d.mean() < hi and abs((hi - lo) - 2 * 1.96 * se) < 0.3 * 2 * 1.96 * se
    assert r["pesq_wb"] == {"mean": 0.0, "ci95": [0.0, 0.0], "wins": 0, "n": 39}
    with pytest.raises(ValueError, match="same items"):
        paired_difference(a, b[:-1], ["stoi"])


def test_clip_order_is_seeded_filtered_and_round_robin() -> None:
    rows = manifest_rows()
    order = audio_clips.clip_order(rows, "validation", seed=0)
    assert order == audio_clips.clip_order(list(reversed(rows)), "validation", seed=0)  # deterministic, input order aside
    assert len(order) == 8 and all(r["split"] == "validation" and r["kind"] == "speech" for r in order)
    assert all(1.0 <= float(r["seconds"]) <= 13.0 for r in order)
    groups = [r["group"] for r in order]
    assert len(set(groups[:3])) == 3 and set(groups[3:5]) == {"A", "B"} and groups[5:] == ["A"] * 3
    a_files = [r["path"] for r in order if r["group"] == "A"]
    assert a_files == ["A4.wav", "A3.wav", "A2.wav", "A1.wav", "A0.wav"]  # the longest of a group first
    assert [r["path"] for r in audio_clips.clip_order(rows, "test", seed=0)] == ["test.wav"]


# --------------------------------------------------------------------------- the run on a tiny corpus


def tiny_corpus(root: Path) -> Path:
    """Eight files in three splits, and a broken one; the validation speech doubles to just over 9.01 s
    (one DNSMOS window each)."""
    specs = [("train", "speech", "a", 2.0), ("train", "speech", "b", 2.0), ("train", "music", "m", 1.5),
             ("validation", "speech", "c", 1.2), ("validation", "speech", "c", 2.4), ("validation", "speech", "d", 1.2),
             ("validation", "sounds", "e", 1.0), ("test", "speech", "f", 2.0)]
    rows = []
    (root / "audio").mkdir(parents=True)
    for i, (split, kind, group, seconds) in enumerate(specs):
        path = f"audio/{i}.wav"
        sf.write(root / path, speechlike(seconds, f0=110 + 15 * i, seed=i), RATE)
        rows.append({"path": path, "source": f"src-{group}", "group": group, "kind": kind, "split": split,
                     "seconds": seconds, "language": "en"})
    (root / "audio" / "broken.wav").write_bytes(b"RIFF not really")
    rows.append({"path": "audio/broken.wav", "source": "src-d", "group": "d", "kind": "speech",
                 "split": "validation", "seconds": 1.2, "language": "en"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def tiny_tokenizer() -> AudioTokenizer:
    torch.manual_seed(0)
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=16,
                                              decoder_blocks=1)).eval()
    with torch.no_grad():
        tok.vq.embed.copy_(tok.log_mel(torch.from_numpy(speechlike(0.7)))[:, :64].T.reshape(32, 160))
    return tok


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-audio")
    corpus = tiny_corpus(root / "corpus")
    build_cache(corpus, root / "cache", progress=False)
    torch.manual_seed(1)
    voc = save_module(Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)).eval(), root / "voc")
    return {"corpus": corpus, "cache": root / "cache", "tok": save_module(tiny_tokenizer(), root / "tok"), "voc": voc}


def test_train_slices_are_the_rows_of_whole_clips(corpus: dict[str, Path]) -> None:
    tok, cache = tiny_tokenizer(), AudioCache(corpus["cache"], "train")
    drawn = aq.train_slices(tok, cache, 300, seed=0, chunk=128)
    assert drawn.shape == (300, 160)
    assert torch.equal(drawn, aq.train_slices(tok, cache, 300, seed=0, chunk=64))
    every = torch.cat([slices(tok, torch.from_numpy(cache.read(c))) for c in cache.clips])  # (N, 160)
    nearest = torch.cdist(drawn, every, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert float(nearest.max()) < 1e-3  # each drawn slice is one of the clips' own slices
    assert len({tuple(r.tolist()) for r in drawn.round(decimals=3)}) > 100  # spread over the positions


def test_a_tokenizer_without_a_vocoder_needs_one() -> None:
    with pytest.raises(SystemExit, match="--vocoder"):
        aq.load_vocoder(tiny_tokenizer(), None)


def test_manifest_mode_end_to_end(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import pesq  # noqa: F401
    except ImportError:  # PESQ stays out of the test extra: a stand-in keeps the rest of the run tested
        monkeypatch.setattr(aq, "pesq_wb", lambda ref, deg: 1.0)
        monkeypatch.setattr(aq, "REQUIRED", tuple(p for p in aq.REQUIRED if p != "pesq"))
    argv = ["--manifest", str(corpus["corpus"] / "manifest.jsonl"), "--split", "validation",
            "--cache", str(corpus["cache"]), "--model", str(corpus["tok"]), "--vocoder", str(corpus["voc"]),
            "--clips", "3", "--kmeans-vectors", "400", "--kmeans-iters", "3", "--repeats", "1",
            "--skip", "encodec,griffin_lim"]
    assert bench.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {(r["bench"], r.get("method")): r for r in lines}
    s = by[("eval_set", None)]
    assert s["clips"] == 3 and s["groups"] == 2 and s["seconds"] == 4.8  # the broken file is passed over
    assert {m for b, m in by if b == "quality"} == {"original", "ceiling", "kmeans", "dmel", "ours"}
    assert set(by[("quality", "original")]["median"]) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
    for m in ("ceiling", "kmeans", "dmel", "ours"):
        row = by[("quality", m)]
        assert set(aq.METRICS) <= set(row) and set(row["median"]) == set(aq.METRICS), m
        assert all(math.isfinite(row[k]) for k in aq.METRICS), row
        assert row["clips"] == 3 and row["vocoder"] == str(corpus["voc"])
    assert by[("quality", "ceiling")]["mel_distance"] == 0.0
    km, dm = by[("quality", "kmeans")], by[("quality", "dmel")]
    assert km["codebook_size"] == 32 and km["fit_vectors"] == 400 and 0 < km["usage"] <= 1 and km["perplexity"] >= 1
    assert dm["bits_per_token"] == 5 == sum(dm["bits_per_band"]) and len(dm["bits_per_band"]) == dm["bands"]
    assert dm["bits_per_second"] == 250 and dm["what"].startswith("dMel-style")
    usage = by[("codebook_usage", "ours")]
    assert usage["files"] == 4 and usage["unreadable"] == 1 and usage["tokens"] == 50 * 5.8
    assert usage["codebook_size"] == 32 and usage["usage"] == round(usage["distinct"] / 32, 4)  # tokens > K
    assert km["tokens"] == by[("quality", "ours")]["tokens"] and km["distinct"] <= 32
    assert ("cache_check", None) not in by  # the cache records this manifest's sha256
    speed = by[("speed", None)]
    assert speed["decode_x_realtime"] > 0 and speed["size_mb"] > 0 and "encode_speedup_vs_encodec" not in speed
    assert (speed["ours_stoi"], speed["ours_pesq_wb"]) == (by[("quality", "ours")]["stoi"], by[("quality", "ours")]["pesq_wb"])
    tones = by[("tones", "ours")]
    assert tones["tones"] == 24 and tones["kept"] == sum(tones["per_pitch"].values()) and 0 <= tones["accuracy"] <= 1
    assert set(tones["level_db"]) == set(tones["per_pitch"]) and all(v < 20 for v in tones["level_db"].values())
    assert by[("published_anchors", None)]["data"].startswith("LibriSpeech test-clean")
    bar = by[("bar", "ours")]
    assert bar["missing"] == ["encode_vs_encodec"] and bar["passed"] + bar["failed"] == len(aq.BAR) - 1
    paired = by[("paired", "ours_minus_kmeans")]
    assert paired["items"] == 3 and ("paired", "ours_minus_compare") not in by
    for k in ("stoi", "dnsmos_ovrl", "logmel_l1"):  # every clip scored: the mean difference is the difference of means
        d = paired[k]
        assert d["n"] == 3 and 0 <= d["wins"] <= 3 and d["ci95"][0] <= d["mean"] <= d["ci95"][1]
        assert d["mean"] == pytest.approx(by[("quality", "ours")][k] - km[k], abs=2e-4)


def test_manifest_mode_without_encodec_times_ours(corpus: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from test_bench_peers import block

    block(monkeypatch, tmp_path / "stubs", "encodec")
    argv = ["--manifest", str(corpus["corpus"] / "manifest.jsonl"), "--split", "validation",
            "--model", str(corpus["tok"]), "--vocoder", str(corpus["voc"]), "--clips", "1", "--repeats", "1",
            "--skip", "ceiling,kmeans,dmel,griffin_lim,usage,tones"]
    assert bench.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["peer"] for r in lines if "peer" in r] == ["encodec"]
    speed = next(r for r in lines if r["bench"] == "speed" and "peer" not in r)
    assert speed["rtf_encode"] > 0 and "encodec_seconds" not in speed and speed["ours_stoi"] is not None
    assert "encode_vs_encodec" in next(r for r in lines if r["bench"] == "bar")["missing"]


def test_at_level_scales_and_clips_and_leaves_level_zero_alone() -> None:
    row = {"path": "a.flac"}
    a = torch.tensor([0.5, -0.05, 0.01])
    assert audio_clips.at_level([(row, a)], 0.0)[0][1] is a
    (r, q), = audio_clips.at_level([(row, a)], -20.0)
    assert r is row and torch.allclose(q, a / 10)
    loud = audio_clips.at_level([(row, a)], 20.0)[0][1]
    assert torch.allclose(loud, torch.tensor([1.0, -0.5, 0.1]))  # clipped to [-1, 1]


def test_manifest_mode_at_another_level(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--level-db scales the clips first: their rows say so, and the round trip scores differently."""
    argv = ["--manifest", str(corpus["corpus"] / "manifest.jsonl"), "--split", "validation",
            "--cache", str(corpus["cache"]), "--model", str(corpus["tok"]), "--vocoder", str(corpus["voc"]),
            "--clips", "2", "--skip", "ceiling,kmeans,dmel,griffin_lim,usage,speed,encodec,tones"]
    rows = {}
    for level in (0.0, -20.0):
        assert bench.main([*argv, "--level-db", str(level)]) == 0
        rows[level] = {(r["bench"], r.get("method")): r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert all("level_db" not in r for r in rows[0.0].values())
    quiet = rows[-20.0]
    for key in (("eval_set", None), ("quality", "original"), ("quality", "ours"), ("bar", "ours")):
        assert quiet[key]["level_db"] == -20.0, key
    assert "level_db" not in quiet[("published_anchors", None)]
    assert quiet[("eval_set", None)]["clips"] == rows[0.0][("eval_set", None)]["clips"] == 2
    assert quiet[("quality", "ours")]["stoi"] != rows[0.0][("quality", "ours")]["stoi"]


def test_level_sweep_rows_pairs_and_plot(corpus: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Each model gets a row per level; a model against itself pairs to exactly zero; quieter input
    changes the scores; the plot is written."""
    tok, twin = corpus["tok"], tmp_path / "twin"
    shutil.copytree(tok, twin)
    png = tmp_path / "levels.png"
    argv = ["--manifest", str(corpus["corpus"] / "manifest.jsonl"), "--models", str(tok), str(twin),
            "--labels", "one", "two", "--levels=0,-25", "--clips", "2", "--plot", str(png), "--no-progress"]
    assert audio_levels.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["bench"] == "eval_set" and lines[0]["clips"] == 2
    levels = [r for r in lines if r["bench"] == "levels"]
    assert [(r["model"], r["level_db"]) for r in levels] == [("one", -25.0), ("one", 0.0), ("two", -25.0), ("two", 0.0)]
    quiet, own = levels[0], levels[1]
    assert own["stoi_drop"] == 0.0 and quiet["stoi_drop"] == round(own["stoi"] - quiet["stoi"], 4)
    assert quiet["stoi"] != own["stoi"] and quiet["stoi_clips"] == 2
    paired = [r for r in lines if r["bench"] == "levels_paired"]
    assert len(paired) == 2 and all(r["stoi"]["mean"] == 0.0 and r["stoi"]["wins"] == 0 for r in paired)
    assert png.stat().st_size > 1000
    with pytest.raises(SystemExit):
        audio_levels.build_parser().parse_args(["--manifest", "m", "--levels", "loud"])
    with pytest.raises(SystemExit, match="each model once"):
        audio_levels.main(["--manifest", "m", "--models", "audio", "audio"])
    with pytest.raises(SystemExit, match="2 names for 1 models"):
        audio_levels.main(["--manifest", "m", "--models", "audio", "--labels", "a", "b"])


def test_missing_or_bad_manifest_and_model_stop_with_their_names(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--manifest .*nope.jsonl: no such file"):
        audio_clips.read_manifest(tmp_path / "nope.jsonl")
    bad = tmp_path / "manifest.jsonl"
    bad.write_text('{"path": "a.wav", "split": "train"}\n\n{"path": \n')
    with pytest.raises(SystemExit, match=r"^--manifest .*manifest\.jsonl:3: not JSON"):
        audio_clips.read_manifest(bad)
    bad.write_text('{"path": "a.wav", "split": "train"}\n\n')
    assert audio_clips.read_manifest(bad) == [{"path": "a.wav", "split": "train"}]
    with pytest.raises(SystemExit, match=r"--models .*missing: no checkpoint"):
        audio_levels.main(["--manifest", str(bad), "--models", str(tmp_path / "missing")])


# --------------------------------------------------------------------------- where in frequency it loses


def test_band_channels_partition_the_mel_channels_by_centre() -> None:
    tok = tiny_tokenizer()
    centres = audio_bands.channel_centres(tok)
    assert centres.shape == (80,) and bool((centres[1:] >= centres[:-1]).all()) and float(centres[-1]) <= 8000
    bands = audio_bands.band_channels(tok, [0, 1000, 4800, 8000])
    assert [b[:2] for b in bands] == [(0.0, 1000.0), (1000.0, 4800.0), (4800.0, 8000.0)]
    assert bands[0][2] == 0 and bands[-1][3] == 80  # every channel in one band, in order
    assert all(a[3] == b[2] for a, b in itertools.pairwise(bands))
    for lo, hi, first, stop in bands:
        assert bool(((centres[first:stop] >= lo) & (centres[first:stop] <= hi)).all())
    with pytest.raises(SystemExit, match="no mel channel has its centre in 0-5 Hz"):
        audio_bands.band_channels(tok, [0, 5, 8000])
    for bad in ("8000,0", "1000", "0,x"):
        with pytest.raises(SystemExit):
            audio_bands.build_parser().parse_args(["--manifest", "m", "--edges", bad])


def test_band_repairs_score_between_decoded_and_true(corpus: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """One band over every channel is the true log-mel itself; two bands split the channels; rows,
    pairs and the plot are written; a tokenizer without a vocoder is refused by name."""
    from mmtok.audio import vocoder_train

    joined = tmp_path / "joined"
    assert vocoder_train.main(["--attach", str(joined), "--tokenizer", str(corpus["tok"]),
                               "--vocoder", str(corpus["voc"])]) == 0
    capsys.readouterr()
    manifest = str(corpus["corpus"] / "manifest.jsonl")
    assert audio_bands.main(["--manifest", manifest, "--model", str(joined), "--edges", "0,8000", "--clips", "2",
                             "--no-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["bench"] == "eval_set" and lines[0]["clips"] == 2
    rows = {r["method"]: r for r in lines if r["bench"] == "bands"}
    whole, decoded, true = rows["band"], rows["decoded"], rows["true"]
    assert whole["channels"] == [0, 80] and (whole["stoi"], whole["pesq_wb"]) == (true["stoi"], true["pesq_wb"])
    assert true["stoi"] != decoded["stoi"]
    if true["stoi"] > decoded["stoi"]:
        assert whole["closed_stoi"] == 1.0

    png = tmp_path / "bands.png"
    assert audio_bands.main(["--manifest", manifest, "--model", str(joined), "--edges", "0,1500,8000", "--clips", "2",
                             "--no-progress", "--plot", str(png)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    bands = [r for r in lines if r.get("method") == "band" and r["bench"] == "bands"]
    assert len(bands) == 2 and bands[0]["channels"][0] == 0 and bands[0]["channels"][1] == bands[1]["channels"][0]
    assert bands[1]["channels"][1] == 80
    paired = [r for r in lines if r["bench"] == "bands_paired"]
    assert [(r["low_hz"], r["high_hz"]) for r in paired] == [(0.0, 1500.0), (1500.0, 8000.0)]
    assert all(r["stoi"]["n"] == 2 and r["minus"] == "decoded" for r in paired)
    assert png.stat().st_size > 1000
    with pytest.raises(SystemExit, match="no learned vocoder"):
        audio_bands.main(["--manifest", manifest, "--model", str(corpus["tok"])])


def test_encode_length_rows_time_each_length_and_check_the_codes(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from common import Timing

    timed: list[int] = []

    def fake_encode(tok: AudioTokenizer, clip24: torch.Tensor, repeats: int, *, encodec: bool) -> dict:
        timed.append(clip24.numel())  # EnCodec is not in the test extra: only the plumbing is checked
        return {"mmtok": Timing((0.01,)), "encodec": Timing((0.2,))}

    monkeypatch.setattr(audio_lengths, "check_peer", lambda bench, module: True)
    monkeypatch.setattr(audio_lengths, "encode_timings", fake_encode)
    monkeypatch.setattr(audio_lengths, "decode_timings", lambda tok, voc, codes, clip24, repeats, *, encodec: {
        "mmtok": Timing((0.02,)), "encodec": Timing((0.1,))})
    audio_lengths.main(["--seconds", "0.5", "5.3", "--repeats", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert timed == [12_000, 127_200]  # at 24 kHz
    assert [r["tokens"] for r in rows] == [25, 265]
    assert [r["codes_same_as_whole_last_block"] for r in rows] == [25, 265]  # real speech, real codes
    assert rows[0]["speedup_vs_encodec"] == 20.0 and rows[1]["x_realtime"] == 530.0
    assert rows[0]["decode_speedup_vs_encodec"] == 5.0 and rows[1]["decode_x_realtime"] == 265.0


def test_peak_growth_without_a_current_rss_source_is_not_a_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    # no kernel peak mark to reset and no /proc/self/statm: rss_mib would read the lifetime peak
    monkeypatch.setattr(peak_memory, "reset_peak_rss", lambda: False)
    monkeypatch.setattr(peak_memory, "has_current_rss", lambda: False)
    ran = []
    assert peak_memory.peak_growth(lambda: ran.append(1)) == (None, "not measured: no current-RSS source")


def test_fresh_peaks_reads_a_calls_memory_in_its_own_process() -> None:
    first, second, how = peak_memory.fresh_peaks(functools.partial, bytearray, 64 << 20, threads=1)  # 64 MiB a call
    assert 60 < first < 80 and 60 < second < 80 and how


def test_shared_ratio_and_usage_helpers() -> None:
    import common
    from audio_baselines import usage_fields

    from mmtok.core.metrics import usage_over

    assert common.ratio(3.0, 2.0) == 1.5 and common.ratio(None, 2.0) is None and common.ratio(3.0, None) is None
    counts = torch.tensor([2, 1, 0, 0, 0, 0])  # 3 tokens, 2 distinct: 2 / min(6, 3)
    assert usage_over(counts) == (2 / 3, 2, 3)
    assert usage_fields(counts)["usage"] == round(2 / 3, 4)
    assert usage_over(torch.zeros(4, dtype=torch.long)) == (0.0, 0, 0)
