"""The benchmark scripts as a user runs them with small or wrong settings: a count, share, preset, part name or
path that cannot work is refused in one line naming its flag before any work (never a traceback, never after a
long run, never a silently wrong row); every line a GPU check prints is JSON even when a figure is NaN; the
GPT-2 peer is built without token ids outside its vocabulary; the corpus table counts images as whole numbers."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import audio as audio_bench  # noqa: E402
import audio_bands  # noqa: E402
import audio_codebook_probe as probe_bench  # noqa: E402
import audio_levels  # noqa: E402
import audio_quality  # noqa: E402
import common  # noqa: E402
import context_growth as cg  # noqa: E402
import corpus_manifest  # noqa: E402
import gpu_media  # noqa: E402
import gpu_trainers  # noqa: E402
import image as image_bench  # noqa: E402
import independent_audio  # noqa: E402
import stream as stream_bench  # noqa: E402
import train as train_bench  # noqa: E402
import vq as vq_bench  # noqa: E402

import mmtok  # noqa: E402
from mmtok.lm.model import ModelConfig  # noqa: E402
from tests.audio_helpers import small_tokenizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def refused(main, capsys: pytest.CaptureFixture[str], prog: str = "bench.py") -> str:
    """The one line :func:`common.run_script` says on stderr when ``main`` is refused (exit 1 or 2)."""
    assert common.run_script(main, prog) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    return err


def never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the run went on to its work")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every script's first piece of real work (and any model load) fails the test if it is reached."""
    for module, name in ((vq_bench, "bench_encode"), (vq_bench, "bench_train"), (train_bench, "build_models"),
                         (stream_bench, "make_corpus"), (cg, "setup_device"), (image_bench, "load_tokenizer"),
                         (gpu_trainers, "write_data"), (independent_audio, "fetch_package"), (mmtok, "load")):
        monkeypatch.setattr(module, name, never)


# --------------------------------------------------------------------------- refused before any work

@pytest.mark.parametrize(("main", "argv", "says"), [
    (vq_bench.main, ["--n", "0"], "--n 0: give a number above 0"),
    (vq_bench.main, ["--ks", "64", "0"], "--ks 0: give a number above 0"),
    (vq_bench.main, ["--dim", "0"], "--dim 0: give a number above 0"),
    (vq_bench.main, ["--repeat-shares", "0", "1.5"], "--repeat-shares 1.5: give a share from 0 to 1"),
    (train_bench.main, ["--batch", "0", "--device", "cpu"], "--batch 0: give a number above 0"),
    (train_bench.main, ["--seq-len", "0", "--device", "cpu"], "--seq-len 0: give a number above 0"),
    (train_bench.main, ["--vocab", "0", "--device", "cpu"], "--vocab 0: give a number above 0"),
    (train_bench.main, ["--preset", "huge", "--device", "cpu"], "--preset huge: no such preset; choose one of base"),
    (cg.main, ["--models", "tiny", "huge"], "--models huge: no such preset"),
    (cg.main, ["--step-limit", "0"], "--step-limit 0: give a number above 0"),
    (cg.main, ["--mem-limit", "0"], "--mem-limit 0: give a number above 0"),
    (cg.main, ["--budget", "0"], "--budget 0: give a number above 0"),
    (cg.main, ["--threads", "0"], "--threads 0: give a number above 0"),
    (image_bench.main, ["--data", "D", "--usage-tokens", "0"], "--usage-tokens 0: give a number above 0"),
    (image_bench.main, ["--data", "D", "--speed-repeats", "0"], "--speed-repeats 0: give a number above 0"),
    (image_bench.main, ["--data", "D", "--threads", "-1"], "--threads -1: give a number above 0"),
    (image_bench.main, ["--data", "D", "--kmeans-crop", "0"], "--kmeans-crop 0: give a number above 0"),
    (image_bench.main, ["--data", "D", "--kmeans-polish", "-1"], "--kmeans-polish -1: give 0 or more"),
    (image_bench.main, ["--data", "D", "--kmeans-scale-min", "0"], "need 0 < MIN <= MAX"),
    (image_bench.main, ["--data", "D", "--kmeans-zoom-max", "0.5"], "--kmeans-zoom-max 0.5: give 1 or more"),
    (image_bench.main, ["--data", "D", "--kmeans-zoom-prob", "2"], "--kmeans-zoom-prob 2: give a share from 0"),
    (audio_bench.main, ["--data", "D", "--skip", "speed,memroy"], "--skip speed,memroy: unknown parts ['memroy']"),
    (audio_bench.main, ["--data", "D", "--threads", "0"], "--threads 0: give a number above 0"),
    (audio_bench.main, ["--data", "D", "--repeats", "0"], "--repeats 0: give a number above 0"),
    (audio_bench.main, ["--data", "D", "--kmeans-iters", "0"], "--kmeans-iters 0: give a number above 0"),
    (audio_quality.main, ["--manifest", "M", "--threads", "0"], "--threads 0: give a number above 0"),
    (audio_quality.main, ["--manifest", "M", "--repeats", "0"], "--repeats 0: give a number above 0"),
    (audio_levels.main, ["--manifest", "M", "--threads", "0"], "--threads 0: give a number above 0"),
    (audio_levels.main, ["--manifest", "M", "--plot", "/no/such/folder/l.png"], "--plot /no/such/folder/l.png: no"),
    (audio_bands.main, ["--manifest", "M", "--threads", "0"], "--threads 0: give a number above 0"),
    (audio_bands.main, ["--manifest", "M", "--plot", "/no/such/folder/b.png"], "--plot /no/such/folder/b.png: no"),
    (probe_bench.main, ["--data", "D", "--codebook-size", "0"], "--codebook-size 0: give a number above 0"),
    (probe_bench.main, ["--data", "D", "--threads", "0"], "--threads 0: give a number above 0"),
    (probe_bench.main, ["--data", "D", "--rounds", "0"], "--rounds 0: give a number above 0"),
    (probe_bench.main, ["--data", "D", "--synthetic-fraction", "2"], "--synthetic-fraction 2: give a share from"),
    (gpu_trainers.main, ["--device", "cpu", "--dir", "D", "--steps", "0"], "--steps 0: give a number above 0"),
    (gpu_trainers.main, ["--device", "cpu", "--dir", "D", "--more", "0"], "--more 0: give a number above 0"),
    (independent_audio.main, ["--out", "D", "--clips", "0"], "--clips 0: give a number above 0"),
])
def test_a_value_that_cannot_work_is_refused_before_any_work(main, argv: list[str], says: str, no_work: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert says in refused(lambda: main(argv), capsys)


def test_stream_refuses_zero_docs_workers_and_repeats_before_writing_its_corpus(
        monkeypatch: pytest.MonkeyPatch, no_work: None, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in ((["--docs", "0"], "--docs 0"), (["--workers", "1", "0"], "--workers 0"),
                       (["--repeat", "0"], "--repeat 0")):
        monkeypatch.setattr(sys, "argv", ["stream.py", *argv])
        assert f"{says}: give a number above 0" in refused(stream_bench.main, capsys)


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path, no_work: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    inside = tmp_path / "a_file" / "out"
    assert f"--out {inside}: cannot make this folder" in refused(lambda: cg.main(["--out", str(inside)]), capsys)
    argv = ["--device", "cpu", "--dir", str(inside)]
    assert f"--dir {inside}: cannot make this folder" in refused(lambda: gpu_trainers.main(argv), capsys)


def test_levels_must_be_finite(capsys: pytest.CaptureFixture[str]) -> None:
    for parser, argv in ((audio_levels.build_parser(), ["--manifest", "M", "--levels=nan,0"]),
                         (audio_quality.build_parser(), ["--manifest", "M", "--level-db", "nan"])):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert "finite" in capsys.readouterr().err


def test_clips_below_one_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(audio_levels, "load_audio_tokenizer", lambda name, flag: small_tokenizer())
    err = refused(lambda: audio_levels.main(["--manifest", "/no/such/manifest.jsonl", "--clips", "0"]), capsys)
    assert "--clips 0: give 1 or more" in err


# --------------------------------------------------------------------------- models of the wrong kind


def test_an_image_model_is_refused_where_an_audio_tokenizer_is_needed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(independent_audio, "fetch_package", never)
    for main, argv in ((audio_bench.main, ["--data", "/no/such", "--model", "image", "--skip", "speed,memory"]),
                       (independent_audio.main, ["--out", "/no/such", "--model", "image"])):
        assert "--model image is not an audio tokenizer: it loads as ImageTokenizer" in refused(
            lambda main=main, argv=argv: main(argv), capsys)


def test_audio_quality_refuses_an_image_model_to_compare(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for peer in audio_quality.REQUIRED:
        pytest.importorskip(peer)
    monkeypatch.setattr(audio_quality, "load_vocoder", lambda tok, path: None)
    monkeypatch.setattr(audio_quality, "read_manifest", never)
    argv = ["--manifest", "M", "--compare", "image", "--skip", "speed,encodec"]
    assert "--compare image is not an audio tokenizer" in refused(lambda: audio_quality.main(argv), capsys)


def test_audio_bands_names_the_command_that_attaches_a_vocoder(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    mmtok.save(small_tokenizer(), tmp_path / "tok")
    err = refused(lambda: audio_bands.main(["--manifest", "M", "--model", str(tmp_path / "tok")]), capsys)
    assert "has no learned vocoder" in err and "mmtok train-tokenizer vocoder" in err


# --------------------------------------------------------------------------- audio_codebook_probe data


def probe_corpus(root: Path, voices: list[str]) -> Path:
    """A corpus folder as ``build_corpus`` writes it: 1 s clips of noise, one per ``voices`` entry."""
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    for i, voice in enumerate(voices):
        name = f"espeak-{i:05d}.wav"
        sf.write(root / "train" / name, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        train.append({"file": name, "source": "espeak-ng", "voice": voice, "seconds": 1.0})
    (root / "manifest.json").write_text(json.dumps({"sample_rate": 16000, "train": train, "heldout": []}))
    return root


def test_the_probe_refuses_a_codebook_larger_than_its_fit_tokens(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = probe_corpus(tmp_path / "c", ["de", "fr+m1"])
    err = refused(lambda: probe_bench.main(["--data", str(data), "--codebook-size", "1000"]), capsys)
    assert "--codebook-size 1000: the 2 clips left to fit on give 100 tokens, fewer than the codes" in err


def test_the_probe_refuses_to_take_every_clip_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = probe_corpus(tmp_path / "c", ["sv", "el+m3"])
    err = refused(lambda: probe_bench.main(["--data", str(data), "--codebook-size", "4"]), capsys)
    assert "every training clip is a probe clip" in err


# --------------------------------------------------------------------------- what the scripts print


def strict_rows(text: str) -> list[dict]:
    """Each line of ``text`` as strict JSON (NaN and Infinity refused, as JSON readers other than Python's do)."""
    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return [json.loads(line, parse_constant=no_constant) for line in text.splitlines() if line.strip()]


def test_gpu_check_rows_are_json_when_a_figure_is_nan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"ok": False, "decode_max_diff": math.nan, "wave_snr_db": math.inf}
    monkeypatch.setattr(gpu_media, "image_check", lambda device: {"check": "image_device", **bad})
    monkeypatch.setattr(gpu_media, "audio_check", lambda device: {"check": "audio_device", **bad})
    assert gpu_media.main(["--device", "cpu"]) == 1
    rows = strict_rows(capsys.readouterr().out)
    assert [r["decode_max_diff"] for r in rows] == [None, None]

    monkeypatch.setattr(gpu_trainers, "write_data", lambda folder: {})
    monkeypatch.setattr(gpu_trainers, "trainer_args", lambda *args: [])
    monkeypatch.setattr(gpu_trainers, "train_check", lambda name, *args: {"check": name, **bad, "ok": True})
    monkeypatch.setattr(gpu_trainers, "load_check", lambda name, *args: {"check": name, **bad})
    assert gpu_trainers.main(["--device", "cpu", "--dir", str(tmp_path / "runs")]) == 1
    rows = strict_rows(capsys.readouterr().out)
    assert len(rows) == 6 and all(r["wave_snr_db"] is None for r in rows)


def test_the_gpt2_peer_has_no_token_id_outside_its_vocabulary() -> None:
    cfg = ModelConfig.preset("tiny", vocab_size=64, max_seq_len=17, n_layer=1)
    config = train_bench.gpt2_sdpa(cfg).config
    for token in (config.bos_token_id, config.eos_token_id):
        assert token is None or 0 <= token < cfg.vocab_size


def test_the_image_corpus_table_counts_whole_images(capsys: pytest.CaptureFixture[str]) -> None:
    corpus_manifest.print_table({"unit": "images", "per_source": {"mate": {"files": 13, "train": 11,
                                 "validation": 1, "test": 1}}, "per_split": {"train": 11, "validation": 1,
                                 "test": 1}, "disk_bytes": 2**20})
    table = capsys.readouterr().out
    assert "11.0" not in table and " 11 " in table
    corpus_manifest.print_table({"unit": "minutes", "per_source": {"s": {"files": 2, "train": 1.25}},
                                 "per_split": {"train": 1.25}, "disk_bytes": 0})
    assert "1.2" in capsys.readouterr().out  # minutes keep their tenth


def test_vq_help_says_the_train_rows_codebook_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        vq_bench.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the train rows use K = 1024" in text and "share (0 to 1)" in text
