"""Training an audio tokenizer and its vocoder on a small folder of one's own recordings: the model card and
command an attach writes, clips shorter than one training crop or segment, unreadable files held aside for
validation, a corpus folder without a manifest, and the vocoder's seconds per step."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import soundfile as sf

from mmtok.audio import train as audio_train
from mmtok.audio import vocoder_run, vocoder_train
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.train_data import padding_note
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_data import build_cache
from mmtok.core.errors import CorpusError
from mmtok.core.module_io import save_module
from tests.audio_helpers import small_tokenizer
from tests.test_audio import speechlike
from tests.test_audio_train_cli import SMALL
from tests.test_vocoder_cli import TINY, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def _clips(folder: Path, seconds: float, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"clip-{i}.wav", speechlike(seconds, seed=40 + i), SAMPLE_RATE)
    return folder


# --------------------------------------------------------------------------- attach: card and command


def test_attach_writes_its_own_model_card_and_command_over_a_tokenizers_card(tmp_path: Path) -> None:
    tok_dir = save_module(small_tokenizer(), tmp_path / "tok",
                          provenance={"command": "mmtok train-tokenizer audio --data mine --out run", "steps": 7,
                                      "decoder_tuned": {"with_vocoder_run": "/runs/v1", "steps": 5}})
    voc_dir = save_module(Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1)), tmp_path / "voc",
                          provenance={"command": "python -m mmtok.audio.vocoder_train --out v", "steps": 3,
                                      "features": "true", "stage": "true log-mel features"})
    out = tmp_path / "joined"
    out.mkdir()  # a copy of the tokenizer's own folder, its card (Griffin-Lim, no vocoder) beside it
    for f in ("config.json", "model.safetensors"):
        (out / f).write_bytes((tok_dir / f).read_bytes())
    (out / "README.md").write_text("# mmtok audio tokenizer\n\nwaveform (NNLS mel inversion + Griffin-Lim)\n")
    args = ["--attach", str(out), "--tokenizer", str(tok_dir), "--vocoder", str(voc_dir), "--mel-match", "1"]
    assert vocoder_train.main(args) == 0
    card = (out / "README.md").read_text()
    assert "Griffin-Lim" not in card and "learned vocoder" in card
    assert "`mmtok train-tokenizer audio --data mine --out run`" in card  # the tokenizer's command
    assert "`python -m mmtok.audio.vocoder_train --out v`" in card  # the vocoder's
    assert "decoder tuned since, 5 steps in the vocoder run /runs/v1" in card
    prov = json.loads((out / "config.json").read_text())["provenance"]
    assert prov["command"].endswith(" ".join(args))  # the attach itself
    assert f"attached by: `{prov['command']}`" in card


# --------------------------------------------------------------------------- clips shorter than a crop / segment


def test_padding_note_counts_the_short_clips_and_the_silence_drawn() -> None:
    assert padding_note([20, 30], 20, who="w", piece="crop (x)", fix="f") is None
    note = padding_note([5, 20, 40], 20, who="w", piece="crop (x)", fix="f")
    assert note is not None and "1 of 3 training clips is shorter than one crop (x)" in note
    assert "6% of what is trained on" in note  # drawn by length: 5/65 of the draws, each 15/20 silence
    even = padding_note([5, 20, 40], 20, weights=[1, 1, 1], who="w", piece="crop (x)", fix="f")
    assert even is not None and "25% of what is trained on" in even  # 1/3 × 15/20


def test_audio_trainer_says_when_clips_are_shorter_than_one_crop(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = _clips(tmp_path / "data", 0.1, n=4)  # 5 tokens each; a crop is 8
    assert audio_train.main(["--data", str(data), "--out", str(tmp_path / "run"), *SMALL, "--codebook-size", "8",
                             "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "4 of 4 training clips are shorter than one crop (--crop-tokens 8: 0.16 s)" in err
    assert "a smaller --crop-tokens" in err


def test_vocoder_trainer_says_when_clips_are_shorter_than_one_segment(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    build_cache(write_corpus(tmp_path / "corpus"), tmp_path / "cache", progress=False)  # 1 s clips
    args = ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), *TINY, "--steps", "1"]
    assert vocoder_train.main([*args[:4], *[a if a != "0.2" else "1.5" for a in args[4:]]]) == 0
    err = capsys.readouterr().err
    assert "3 of 3 training clips are shorter than one segment (--segment-seconds 1.5)" in err
    assert "33% of what is trained on" in err  # 0.5 s of each 1.5 s segment


# --------------------------------------------------------------------------- unreadable files


def test_an_unreadable_validation_file_is_refused_before_the_first_step(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = _clips(tmp_path / "data", 1.0)
    (data / "broken.wav").write_bytes(b"not audio at all")
    rows = [{"path": f"clip-{i}.wav", "split": "train"} for i in range(3)] + [{"path": "broken.wav",
                                                                              "split": "validation"}]
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    with pytest.raises(Exception, match=r"broken\.wav.*a validation clip.*remove or convert them"):
        audio_train.main(["--data", str(data / "manifest.jsonl"), "--out", str(out), *SMALL, "--codebook-size", "8",
                          "--steps", "2"])
    assert not (out / "model").exists() and not (out / "train-state").exists()  # no step was taken


def test_a_corpus_folder_without_a_manifest_is_told_how_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"has no manifest\.jsonl: write one there.*\"split\": \"train\""):
        build_cache(_clips(tmp_path / "mine", 0.2), tmp_path / "cache", progress=False)


# --------------------------------------------------------------------------- the vocoder's seconds per step


def test_vocoder_s_per_step_leaves_out_the_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_cache(write_corpus(tmp_path / "corpus"), tmp_path / "cache", progress=False)
    slow = vocoder_run.Run.checkpoint

    def slow_checkpoint(self: vocoder_run.Run, **kw: bool) -> None:
        time.sleep(0.6)  # a long validation
        slow(self, **kw)

    monkeypatch.setattr(vocoder_run.Run, "checkpoint", slow_checkpoint)
    out = tmp_path / "run"
    assert vocoder_train.main(["--cache", str(tmp_path / "cache"), "--out", str(out), *TINY, "--steps", "4"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert max(r["s_per_step"] for r in rows) < 0.5, rows  # the 0.6 s after steps 2 and 4 are not a step's


# --------------------------------------------------------------------------- --resume with another --steps


def test_resume_with_more_steps_says_the_cosine_is_drawn_anew(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--data", str(_clips(tmp_path / "data", 1.0)), "--out", str(tmp_path / "run"), *SMALL,
            "--codebook-size", "8"]
    assert audio_train.main([*args, "--steps", "2"]) == 0
    capsys.readouterr()
    assert audio_train.main([*args, "--steps", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "--steps 4 (the run's: 2) stretches the cosine of" in err and "the learning rate at step 3 is" in err
    assert audio_train.main([*args, "--steps", "4", "--resume"]) == 0  # its own --steps now: nothing said
    assert "stretches" not in capsys.readouterr().err
