"""The benchmark scripts' command lines: a fit through two lengths is not called reliable, mmtok's errors end a
script in one line (``<script>: error: ...``, exit 2), bad values and paths are refused before any work, the
length rows say what their ratios are of, a negative ``--levels`` list is read, and what the docs cite exists."""

from __future__ import annotations

import ast
import json
import re
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import audio as audio_bench  # noqa: E402
import audio_codebook_probe as probe_bench  # noqa: E402
import audio_lengths  # noqa: E402
import audio_levels  # noqa: E402
import common  # noqa: E402
import context_growth as cg  # noqa: E402
import gpu_media  # noqa: E402
import image as image_bench  # noqa: E402
import train as train_bench  # noqa: E402
import vq as vq_bench  # noqa: E402

from mmtok.context.growth import Growth, fit  # noqa: E402
from mmtok.core.errors import MmtokError, UsageError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")


def one_line(main, capsys: pytest.CaptureFixture[str], prog: str = "bench.py") -> str:
    """What :func:`common.run_script` says on stderr for ``main``, after checking it exits 2 with one line."""
    assert common.run_script(main, prog) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    return err


# --------------------------------------------------------------------------- fits


def test_a_fit_through_two_lengths_is_not_reliable() -> None:
    two = fit([602, 1202], [0.35, 0.77])
    assert two is not None and two.r2 == pytest.approx(1.0) and not two.reliable and two.why == "only 2 lengths"
    three = fit([602, 1202, 2402], [0.35, 0.77, 1.6])
    assert three is not None and three.reliable and three.why == ""
    assert fit([602, 1202], [0.35, 0.77], busy=True).why == "the machine was busy with other work"
    assert fit([602, 602, 1202], [0.35, 0.36, 0.77]).why == "only 2 lengths"  # distinct lengths are counted


def test_a_fit_row_and_the_demo_of_two_lengths_project_nothing() -> None:
    done = [{"tokens": t, "seconds": t / 1000, "peak_mib": t / 10} for t in (1024, 2048)]
    row = cg.fit_row("tiny", "sdpa", done, hour=3600.0)
    assert not row["reliable"] and row["unreliable_because"] == "only 2 lengths"
    assert row["1M_window_seconds"] is None and row["seconds_are"] == "not projected: only 2 lengths"
    g = Growth(series={"tiny sdpa": done})
    g.load.others = 0.0  # an idle machine
    assert not g.fits("tiny sdpa").reliable


# --------------------------------------------------------------------------- example 04


def test_the_training_example_starts_over_when_run_again() -> None:
    tree = ast.parse((ROOT / "examples" / "04_train_tiny.py").read_text())
    calls = {c.func.id: {k.arg: k.value for k in c.keywords} for c in ast.walk(tree)
             if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert ast.literal_eval(calls["train"]["overwrite"]) is True  # not RunRefusedError: tiny-run holds a run
    assert ast.literal_eval(calls["tokenize_corpus"]["restart"]) is True


# --------------------------------------------------------------------------- one-line errors


def test_run_script_says_mmtok_errors_in_one_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def bad() -> None:
        raise UsageError("--x 0: give\n a number")

    assert one_line(bad, capsys, "x.py") == "x.py: error: --x 0: give a number\n"
    assert common.run_script(lambda: None) == 0 and common.run_script(lambda: 1) == 1
    with pytest.raises(ZeroDivisionError):  # not mmtok's: its traceback
        common.run_script(lambda: 1 / 0)
    monkeypatch.setenv("MMTOK_DEBUG", "1")
    with pytest.raises(UsageError):
        common.run_script(bad)


def test_a_missing_corpus_folder_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = one_line(lambda: probe_bench.main(["--data", str(tmp_path / "nope")]), capsys)
    assert "--data" in err and "no such folder" in err and "build_corpus" in err
    err = one_line(lambda: probe_bench.main(["--data", str(tmp_path)]), capsys)
    assert "no manifest.json" in err


def test_more_heldout_must_be_a_folder_of_wavs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        audio_bench.more_heldout_files(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match=r"no \.wav file"):
        audio_bench.more_heldout_files(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"")
    assert audio_bench.more_heldout_files(str(tmp_path)) == [tmp_path / "a" / "x.wav"]
    with pytest.raises(UsageError, match="--more-heldout"):  # before any model loads
        audio_bench.main(["--data", str(tmp_path), "--more-heldout", str(tmp_path / "nope")])


@NO_CUDA
@pytest.mark.parametrize("main", [vq_bench.main, train_bench.main, gpu_media.main])
def test_a_cuda_device_on_a_cpu_machine_is_one_line(main, capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line(lambda: main(["--device", "cuda"]), capsys)
    assert "finds no CUDA GPU here; use --device cpu" in err and "Traceback" not in err


@pytest.mark.parametrize(("main", "argv", "says"), [
    (vq_bench.main, ["--repeats", "0"], "--repeats 0: give a number above 0"),
    (train_bench.main, ["--steps", "0", "--device", "cpu"], "--steps 0: give a number above 0"),
    (audio_lengths.main, ["--seconds", "1", "0"], "--seconds 0: give a number above 0"),
    (audio_lengths.main, ["--wav", "/no/such.wav"], "--wav /no/such.wav: no such file"),
    (audio_lengths.main, ["--model", "/no/such/model"], "no checkpoint at /no/such/model"),
    (image_bench.main, ["--data", "/no/such", "--model", "/no/such/model"], "no checkpoint at /no/such/model"),
    (cg.main, ["--max-seconds", "0"], "--max-seconds 0: give 1 or more"),
])
def test_bad_values_and_paths_are_one_line(main, argv: list[str], says: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert says in one_line(lambda: main(argv), capsys)


def test_context_growth_removes_its_temp_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Path] = []

    def stop(args, out, tmp: Path, *rest) -> int:
        seen.append(tmp)
        assert tmp.is_dir()
        (tmp / "pan.mp4").write_bytes(b"x")
        raise MmtokError("stopped")

    monkeypatch.setattr(cg, "_run", stop)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    one_line(lambda: cg.main(["--out", str(tmp_path / "out"), "--threads", "1"]), capsys)
    assert seen and not seen[0].exists()


# --------------------------------------------------------------------------- audio_lengths rows


def test_length_rows_name_their_statistic_and_n_and_skip_a_missing_encodec(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[bool] = []

    def fake(*args, encodec: bool) -> dict:
        asked.append(encodec)
        return {"mmtok": common.Timing((0.01, 0.03, 0.02))} | ({"encodec": common.Timing((0.2,) * 3)} if encodec else {})

    monkeypatch.setattr(common, "missing_peer", lambda module: "not installed: pip install mmtok[bench]")
    monkeypatch.setattr(audio_lengths, "encode_timings", fake)
    monkeypatch.setattr(audio_lengths, "decode_timings", fake)
    assert audio_lengths.main(["--seconds", "0.5", "--repeats", "3"]) == 0
    skipped, row = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert skipped == {"bench": "audio_length", "peer": "encodec", "skipped": "not installed: pip install mmtok[bench]"}
    assert asked == [False, False] and row["ratio_of"] == common.RATIO_OF and row["n"] == 3
    assert row["encode_ms"] == 20.0 and row["encodec_ms"] is None and row["speedup_vs_encodec"] is None
    assert row["timings"]["encode"] == {"mmtok": {"min_s": 0.01, "median_s": 0.02, "n": 3}}


# --------------------------------------------------------------------------- audio_levels, docs


def test_negative_levels_are_read() -> None:
    argv = audio_levels.join_negative_levels(["--manifest", "m.jsonl", "--levels", "-20,0", "--clips", "4"])
    assert audio_levels.build_parser().parse_args(argv).levels == [-20.0, 0.0]
    assert "--levels=-20,0" in audio_levels.build_parser().format_help()


def test_the_audio_model_notes_cite_benchmark_files_that_exist() -> None:
    cited = set(re.findall(r"benchmarks/[\w/]+\.py", (ROOT / "models" / "audio" / "README.md").read_text()))
    assert cited and all((ROOT / c).is_file() for c in cited), sorted(c for c in cited if not (ROOT / c).is_file())
