"""``mmtok eval``: each file scored through encode and decode, means per model, models paired."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import mmtok
from mmtok.cli import main
from mmtok.core.metrics import psnr, ssim
from mmtok.evaluate import score_audio

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"
HAS_STOI = importlib.util.find_spec("pystoi") is not None
HAS_PESQ = importlib.util.find_spec("pesq") is not None


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def noisy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped image tokenizer with noise on its decoder's weights: a model that is worse, for pairing."""
    tok = mmtok.load("image")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tok.decoder.parameters():
            p.add_(0.05 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=g))
    return mmtok.save(tok, tmp_path_factory.mktemp("models") / "noisy")


def test_an_image_row_is_the_round_trip_against_what_the_encoder_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "rocket.jpg"), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    tok = mmtok.load("image")
    files = [r for r in rows if "file" in r]
    assert [Path(r["file"]).name for r in files] == ["coffee.jpg", "rocket.jpg"]
    for r in files:
        ref = tok.preprocess(r["file"])
        rec = tok.decode(tok.encode(r["file"]))
        assert r["kind"] == "image" and r["model"] == tok.provenance["model_version"]
        assert r["psnr_db"] == pytest.approx(float(psnr(rec, ref)), abs=1e-5)
        assert r["ssim"] == pytest.approx(float(ssim(rec, ref)), abs=1e-6)
    (summary,) = [r for r in rows if "summary" in r]
    codes = torch.cat([tok.encode(EXAMPLES / n).flatten() for n in ("coffee.jpg", "rocket.jpg")])
    used = codes.unique().numel()
    assert summary["files"] == 2 and summary["tokens"] == 512 and summary["codes_used"] == used
    assert summary["usage"] == pytest.approx(used / 512, abs=1e-4)  # distinct codes over min(K, tokens)
    assert summary["psnr_db"] == pytest.approx(np.mean([r["psnr_db"] for r in files]), abs=1e-5)
    assert not [r for r in rows if "paired" in r]  # one model: nothing to pair


def test_a_worse_model_is_paired_against_the_first_and_loses(noisy_model: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / n) for n in ("coffee.jpg", "rocket.jpg", "chelsea.jpg", "camera.png")]
    assert main(["eval", *files, "--image", "image", "--image", str(noisy_model), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    (pair,) = [r for r in rows if "paired" in r]
    assert pair["model"] == str(noisy_model) and pair["minus"] == mmtok.load("image").provenance["model_version"]
    assert pair["items"] == 4 and pair["psnr_db"]["n"] == 4
    assert pair["psnr_db"]["mean"] < 0 and pair["psnr_db"]["ci95"][1] < 0 and pair["psnr_db"]["wins"] == 0
    by_model = {r["model"]: r for r in rows if "summary" in r}
    assert by_model[str(noisy_model)]["psnr_db"] < by_model[pair["minus"]]["psnr_db"]
    # the same model twice: every difference is exactly zero and neither wins
    assert main(["eval", *files[:2], "--image", "image", "--image", "image", "--json"]) == 0
    (same,) = [r for r in _json_lines(capsys.readouterr().out) if "paired" in r]
    assert same["model"] == "image" and same["psnr_db"] == {"mean": 0.0, "ci95": [0.0, 0.0], "wins": 0, "n": 2}


def test_a_sound_is_scored_at_16_khz_and_a_silent_one_does_not_stop_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "silence.wav", np.zeros(8000, np.float32), 16000)
    sf.write(tmp_path / "broken.wav", np.zeros(10, np.float32), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not a wave")
    args = ["eval", str(EXAMPLES / "speech_en.wav"), str(tmp_path / "silence.wav"), str(tmp_path / "broken.wav")]
    assert main([*args, "--json"]) == 2
    out, err = capsys.readouterr()
    assert "broken.wav" in err and "1 of 3 files failed; the others were scored" in err
    rows = _json_lines(out)
    speech, silence = [r for r in rows if "file" in r]
    tok = mmtok.load("audio")
    wave = mmtok.load_audio(EXAMPLES / "speech_en.wav", target_rate=16000)
    assert speech["seconds"] == pytest.approx(wave.numel() / 16000, abs=1e-3)
    deg = tok.decode(tok.encode(wave, sample_rate=16000))[: wave.numel()]
    assert speech["logmel_l1"] == pytest.approx(float((tok.log_mel(deg) - tok.log_mel(wave)).abs().mean()), rel=1e-4)
    assert ("stoi" in speech) == HAS_STOI and ("pesq_wb" in speech) == HAS_PESQ
    if HAS_STOI:
        assert 0.5 < speech["stoi"] < 1.0  # speech comes back intelligible (v7: about 0.74 here)
    assert "stoi" not in silence and "pesq_wb" not in silence and math.isfinite(silence["logmel_l1"])
    (summary,) = [r for r in rows if "summary" in r]
    assert summary["files"] == 2 and summary["tokens"] == math.ceil(wave.numel() / 320) + 25  # 50 tokens/s
    if HAS_STOI:
        assert summary["stoi"] == pytest.approx(speech["stoi"]) and summary["stoi_files"] == 1


@pytest.mark.skipif(not HAS_STOI or importlib.util.find_spec("speechmos") is None, reason="needs pystoi and speechmos")
def test_dnsmos_scores_the_decoded_sound_and_its_original() -> None:
    tok = mmtok.load("audio")
    wave = mmtok.load_audio(EXAMPLES / "speech_en.wav", target_rate=16000)
    scores, codes = score_audio(tok, wave, with_dnsmos=True)
    assert codes.numel() == math.ceil(wave.numel() / 320)
    assert {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "original_dnsmos_ovrl"} <= set(scores)
    assert all(1.0 <= scores[k] <= 5.0 for k in ("dnsmos_ovrl", "original_dnsmos_ovrl"))


def test_a_video_scores_its_frames_and_its_soundtrack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(EXAMPLES / "pan.mp4")]) == 0
    out = capsys.readouterr().out
    video = mmtok.load("video")
    frames = torch.cat([video.image.preprocess(f) for f, _ in video.frames(EXAMPLES / "pan.mp4")])
    rec = video.decode(video.encode(EXAMPLES / "pan.mp4"))
    want = float(psnr(rec, frames).mean())
    lines = out.splitlines()
    assert "pan.mp4  image v3" in lines[0] and f"PSNR {want:.2f} dB" in lines[0] and f"[{frames.shape[0]} frames]" in lines[0]
    assert "pan.mp4 (soundtrack)  audio v7" in lines[1] and "log-mel L1" in lines[1]
    assert any(line.startswith("video · ") and f"on {frames.shape[0] * 256:,} tokens" in line for line in lines)


def test_folders_are_searched_and_what_is_not_media_is_refused(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((64, 96, 3), 120, np.uint8)).save(tmp_path / "sub" / "flat.png")
    (tmp_path / "notes.txt").write_text("not media")
    assert main(["eval", str(tmp_path), "--json"]) == 0  # the folder's media only
    rows = _json_lines(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in rows if "file" in r] == ["flat.png"]
    assert main(["eval", str(tmp_path / "notes.txt")]) == 2
    assert "not an image, a sound or a video" in capsys.readouterr().err


def test_without_the_metric_packages_a_note_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import mmtok.evaluate as ev

    monkeypatch.setattr(ev, "_missing", lambda modules: [m for m in modules if m in ("pesq", "speechmos")])
    assert main(["eval", str(EXAMPLES / "speech_de.flac")]) == 0
    assert "without pesq a sound gets no PESQ-WB: pip install mmtok[eval]" in capsys.readouterr().err
    assert main(["eval", str(EXAMPLES / "speech_de.flac"), "--dnsmos"]) == 2
    assert "--dnsmos needs speechmos: pip install mmtok[eval]" in capsys.readouterr().err


def test_plot_draws_each_file_per_model(noisy_model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "eval.png"
    files = [str(EXAMPLES / n) for n in ("coffee.jpg", "rocket.jpg")]
    assert main(["eval", *files, "--image", "image", "--image", str(noisy_model), "--plot", str(out)]) == 0
    assert f"drew {out}" in capsys.readouterr().err
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]  # a PSNR panel and an SSIM panel side by side


def test_a_model_named_wrong_is_one_line_before_any_file(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    files = [str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "rocket.jpg")]
    assert main(["eval", *files, "--image", str(tmp_path / "nowhere")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("mmtok: error:") == 1 and f"--image {tmp_path / 'nowhere'}" in err
    assert main(["eval", *files, "--image", "audio"]) == 2  # a checkpoint of another kind
    assert "is of kind 'audio', expected 'image'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "a folder with no file to read in it" in err  # no blank table after nothing


def test_plot_target_is_the_file_written(tmp_path: Path) -> None:
    """matplotlib adds .png to a name without an extension: the target says so; a folder or a type matplotlib
    cannot write is refused before anything is scored."""
    pytest.importorskip("matplotlib")
    from mmtok.core.errors import UsageError
    from mmtok.evaluate import plot_target

    assert plot_target(tmp_path / "plots" / "eval") == tmp_path / "plots" / "eval.png"
    assert plot_target(tmp_path / "eval.") == tmp_path / "eval.png"
    assert plot_target(tmp_path / "eval.svg") == tmp_path / "eval.svg"
    (tmp_path / "taken.png").mkdir()
    (tmp_path / "afile").write_text("x")
    for bad, why in ((tmp_path, "is a folder"), (tmp_path / "taken", "is a folder"), (tmp_path / "eval.txt", ".txt"),
                     (tmp_path / "afile" / "eval.png", "is a file")):
        with pytest.raises(UsageError, match=why):
            plot_target(bad)


def test_plot_reports_the_file_it_wrote_and_refuses_a_folder_first(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    coffee = str(EXAMPLES / "coffee.jpg")
    assert main(["eval", coffee, "--plot", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"--plot {tmp_path} is a folder" in err  # before any file
    assert main(["eval", coffee, "--plot", str(tmp_path / "scores")]) == 0
    assert f"drew {tmp_path / 'scores.png'}\n" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.png"]
    with Image.open(tmp_path / "scores.png") as im:
        assert im.format == "PNG"


def test_a_model_named_three_times_keeps_three_models_apart(capsys: pytest.CaptureFixture[str]) -> None:
    """Rows and means go by label: the third of one name had the second's label, so their rows merged (counts
    doubled). Each is its own model, paired with the first at exactly zero."""
    from mmtok.evaluate import Evaluation

    assert main(["eval", str(EXAMPLES / "coffee.jpg"), *["--image", "image"] * 3, "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    version = mmtok.load("image").provenance["model_version"]
    labels = [version, "image", "image (2)"]
    assert [r["model"] for r in rows if "file" in r] == labels
    summaries = [r for r in rows if "summary" in r]
    assert [s["model"] for s in summaries] == labels and {(s["files"], s["tokens"]) for s in summaries} == {(1, 256)}
    pairs = [r for r in rows if "paired" in r]
    assert [p["model"] for p in pairs] == labels[1:] and {p["psnr_db"]["mean"] for p in pairs} == {0.0}
    assert [m.label for m in Evaluation({"image": ["image"] * 4}).of("image")] == [*labels, "image (3)"]


def test_a_lower_is_better_score_is_better_where_it_is_lower(capsys: pytest.CaptureFixture[str]) -> None:
    """Paired wins follow each score's direction: a lower log-mel L1 is the better one."""
    from mmtok.evaluate import Evaluation, _fmt_pair

    ev = Evaluation({"audio": ["audio", "audio"]})
    first, second = (m.label for m in ev.of("audio"))
    for i, (l1, l1_b, stoi, stoi_b) in enumerate([(1.0, 0.5, 0.5, 0.6), (1.0, 2.0, 0.5, 0.4), (1.0, 0.8, 0.5, 0.4)]):
        ev.rows += [{"file": f"f{i}", "kind": "audio", "model": first, "logmel_l1": l1, "stoi": stoi},
                    {"file": f"f{i}", "kind": "audio", "model": second, "logmel_l1": l1_b, "stoi": stoi_b}]
    (pair,) = ev.pairs()
    assert pair["logmel_l1"]["wins"] == 2 and pair["logmel_l1"]["mean"] > 0  # worse on average, better on 2
    assert pair["stoi"]["wins"] == 1
    text = list(_fmt_pair(pair))
    assert any(line.startswith(f"audio · {second} − {first}: log-mel L1 +0.1000") and "(lower is better)" in line
               and line.endswith("better on 2 of 3 files") for line in text)
    assert any("STOI" in line and line.endswith("better on 1 of 3 files") for line in text)


def test_a_sound_too_short_for_stoi_keeps_its_log_mel_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pystoi raises on a clip under 26 ms: STOI is NaN there (so left out), the row keeps its log-mel L1."""
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(160) / 16000)  # 10 ms
    sf.write(tmp_path / "blip.wav", tone.astype(np.float32), 16000)
    assert main(["eval", str(tmp_path / "blip.wav"), "--json"]) == 0
    (row,) = [r for r in _json_lines(capsys.readouterr().out) if "file" in r]
    assert "stoi" not in row and math.isfinite(row["logmel_l1"]) and row["seconds"] == 0.01
    if HAS_STOI:
        from mmtok.audio.scores import STOI_MIN_SECONDS, stoi_score

        x = torch.randn(int(STOI_MIN_SECONDS * 16000) + 1, generator=torch.Generator().manual_seed(0))
        assert math.isnan(stoi_score(x[:300], x[:300])) and math.isnan(stoi_score(x[:-1], x[:-1]))
        assert math.isfinite(stoi_score(x, x))  # the shortest clip pystoi scores is not refused


def test_a_file_that_fails_part_way_counts_no_codes(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A file left out of the scores is left out of the token count, usage and perplexity too, for every model:
    a video whose soundtrack fails, and an image the second of two models fails on."""
    import mmtok.evaluate as ev
    from mmtok.core.errors import MmtokError

    def no_sound(*args: object, **kwargs: object) -> None:
        raise MmtokError("this soundtrack cannot be scored")

    monkeypatch.setattr(ev, "score_audio", no_sound)
    assert main(["eval", str(EXAMPLES / "pan.mp4"), str(EXAMPLES / "coffee.jpg"), "--json"]) == 2
    by_kind = {r["summary"]: r for r in _json_lines(capsys.readouterr().out) if "summary" in r}
    assert (by_kind["video"]["files"], by_kind["video"]["tokens"], by_kind["video"]["codes_used"]) == (0, 0, 0)
    assert (by_kind["image"]["files"], by_kind["image"]["tokens"]) == (1, 256)
    monkeypatch.undo()
    real, seen = ev.score_image, []

    def second_fails_on_rocket(tok: object, path: Path) -> object:
        seen.append(tok)
        if path.name == "rocket.jpg" and tok is not seen[0]:
            raise MmtokError(f"{path}: the second model fails on this one")
        return real(tok, path)

    monkeypatch.setattr(ev, "score_image", second_fails_on_rocket)
    files = [str(EXAMPLES / n) for n in ("coffee.jpg", "rocket.jpg")]
    assert main(["eval", *files, "--image", "image", "--image", "image", "--json"]) == 2
    summaries = [r for r in _json_lines(capsys.readouterr().out) if "summary" in r]
    assert [(s["files"], s["tokens"]) for s in summaries] == [(1, 256), (1, 256)]


def test_a_sound_over_ten_minutes_says_what_to_do_from_the_command_line(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "long.wav", np.zeros(610 * 1000, np.int16), 1000, subtype="PCM_16")  # 610 s at 1 kHz
    long = str(tmp_path / "long.wav")
    for argv in (["eval", long], ["encode", long, "--out", str(tmp_path / "codes")]):
        assert main(argv) == 2
        line = capsys.readouterr().err.splitlines()[0]
        assert "long.wav is 610.0 s long, over max_seconds=600; on the command line, cut it into parts of at most " \
               "600 s" in line and "from Python, pass load_audio(..., max_seconds=...)" in line
