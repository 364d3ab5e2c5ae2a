"""The audio tokenizer's and vocoder's trainers: ``--resume`` checks the audio's content (not only names and
lengths; a run saved by the earlier rule still resumes), keeps ``--save-every``, ``--log-every`` and
``--threads``, and says when it starts afresh; a cache refuses a file in two splits (test included) and a
tokenizer of another rate; ``--val-fraction`` that leaves nothing to train on is refused; a cache's clips stay
in its memmap until their log-mel is computed; summary.json names the log-mel L1 as such."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio import train as audio_train
from mmtok.audio import train_data, vocoder_data, vocoder_train
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_data import AudioCache, build_cache
from mmtok.core.errors import CorpusError
from mmtok.core.module_io import save_module
from mmtok.vq.quantizer import VQConfig
from tests.test_audio_train_cli import SMALL, _cli, _data, _state
from tests.test_vocoder_cli import last_error, rows, run_args, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

AFRESH = "holds no train-state/ to resume (a run stopped before its first checkpoint, or none yet): starting it afresh"


def _reversed_copy(src: Path, dst: Path, name: str) -> Path:
    """``src`` copied to ``dst`` with the samples of file ``name`` played backwards and negated: other audio in a
    file of the same name and size."""
    shutil.copytree(src, dst)
    x, rate = sf.read(dst / name, dtype="float32")
    sf.write(dst / name, -x[::-1].copy(), rate)
    assert (dst / name).stat().st_size == (src / name).stat().st_size
    assert (dst / name).read_bytes() != (src / name).read_bytes()
    return dst


def _as_saved_before(out: Path, **extra: object) -> None:
    """Rewrite the train-state's ``extra`` as an earlier version saved it: no content digest, ``extra`` set."""
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    meta["train"]["extra"].pop("content_digest", None)
    meta["train"]["extra"].update(extra)
    path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two caches of corpora whose files have the same paths and lengths, one file's audio other."""
    root = tmp_path_factory.mktemp("caches")
    corpus = write_corpus(root / "corpus")
    other = _reversed_copy(corpus, root / "other", "audio/1.wav")
    build_cache(corpus, root / "cache", progress=False)
    build_cache(other, root / "other-cache", progress=False)
    return root / "cache", root / "other-cache"


# --------------------------------------------------------------------------- 1: what a run trains on, by content


def test_a_folder_run_refuses_other_audio_in_files_of_the_same_names_and_sizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(tmp_path / "data")
    out = tmp_path / "run"
    assert audio_train.main(["--data", str(data), "--out", str(out), *SMALL, "--steps", "1"]) == 0
    other = _reversed_copy(data, tmp_path / "other", "clip-1.wav")
    rc, err = _cli(capsys, "--data", str(other), "--out", str(out), "--resume", "--steps", "2")
    assert rc == 2 and f"--data {other} is not the material the run in {out} trained on" in err, err
    assert len(err.strip().splitlines()) == 1 and _state(out)["train"]["step"] == 1
    moved = shutil.move(str(data), str(tmp_path / "moved"))
    assert audio_train.main(["--data", moved, "--out", str(out), "--resume", "--steps", "2"]) == 0


def test_both_trainers_refuse_a_cache_of_other_audio_with_the_same_paths_and_lengths(
        caches: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, other = caches
    assert ([(c.path, c.length) for c in AudioCache(cache, "train").clips]
            == [(c.path, c.length) for c in AudioCache(other, "train").clips])
    voc = tmp_path / "voc"
    assert vocoder_train.main(run_args(cache, voc, "--steps", "2")) == 0
    assert vocoder_train.main(run_args(other, voc, "--steps", "3", "--resume")) == 2
    assert f"--cache {other} holds other clips than the cache the run in {voc} trained on" in last_error(capsys)
    tok = tmp_path / "tok"
    assert audio_train.main(["--data", str(cache), "--out", str(tok), *SMALL, "--steps", "1", "--val-clips", "1"]) == 0
    rc, err = _cli(capsys, "--data", str(other), "--out", str(tok), "--resume", "--steps", "2")
    assert rc == 2 and f"--data {other} is not the material the run in {tok} trained on" in err, err
    moved = shutil.copytree(cache, tmp_path / "moved-cache")
    assert audio_train.main(["--data", str(moved), "--out", str(tok), "--resume", "--steps", "2"]) == 0


def test_runs_saved_with_the_earlier_digest_resume_by_its_rule(
        caches: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A train-state that recorded names and sizes (a folder), lengths (a cache) or paths and lengths (the
    vocoder) is checked by that rule: the same data resumes, other data is refused."""
    data = _data(tmp_path / "data")
    out = tmp_path / "run"
    assert audio_train.main(["--data", str(data), "--out", str(out), *SMALL, "--steps", "1"]) == 0
    files = sorted(data.glob("*.wav"))
    _as_saved_before(out, data_digest=audio_train.material_digest(files[1:], []))  # what other files gave
    rc, err = _cli(capsys, "--data", str(data), "--out", str(out), "--resume", "--steps", "2")
    assert rc == 2 and "is not the material the run" in err
    _as_saved_before(out, data_digest=audio_train.material_digest(files, []))
    assert audio_train.main(["--data", str(data), "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert "content_digest" in _state(out)["train"]["extra"]  # its next checkpoint records the content

    cache, _ = caches
    voc = tmp_path / "voc"
    assert vocoder_train.main(run_args(cache, voc, "--steps", "2")) == 0
    train, val = AudioCache(cache, "train"), AudioCache(cache, "validation")
    _as_saved_before(voc, material=vocoder_data.listed_digest(val, train))  # what another cache gave
    assert vocoder_train.main(run_args(cache, voc, "--steps", "3", "--resume")) == 2
    assert "holds other clips than the cache the run" in last_error(capsys)
    _as_saved_before(voc, material=vocoder_data.listed_digest(train, val))
    assert vocoder_train.main(run_args(cache, voc, "--steps", "3", "--resume")) == 0


# --------------------------------------------------------------------------- 2: what --resume keeps


def test_resume_keeps_the_runs_save_every_and_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp_path / "data")
    out = tmp_path / "run"
    assert audio_train.main(["--data", str(data), "--out", str(out), *SMALL, "--save-every", "2", "--steps", "2"]) == 0
    settings = _state(out)["train"]["extra"]["settings"]
    assert settings["save_every"] == 2 and settings["threads"] == 1
    saved, real = [], audio_train.save_state

    def saving(run: audio_train._Run) -> None:
        saved.append((run.step, run.args.threads))
        real(run)

    monkeypatch.setattr(audio_train, "save_state", saving)
    assert audio_train.main(["--data", str(data), "--out", str(out), "--resume", "--steps", "6"]) == 0
    assert saved == [(4, 1), (6, 1)]  # every 2 steps, as the run was started (not the default 200)
    saved.clear()
    assert audio_train.main(["--data", str(data), "--out", str(out), "--resume", "--steps", "9",
                             "--save-every", "4"]) == 0  # given: it replaces the run's
    assert [s for s, _ in saved] == [8, 9]


def test_vocoder_resume_keeps_the_runs_save_every_log_every_and_threads(
        caches: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, _ = caches
    out = tmp_path / "run"
    threads: list[int] = []
    monkeypatch.setattr(vocoder_train.torch, "set_num_threads", threads.append)  # said, not done: one thread here
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--save-every", "1", "--log-every", "2",
                                       "--threads", "2")) == 0
    assert vocoder_train.main(["--cache", str(cache), "--out", str(out), "--resume", "--steps", "4",
                               "--no-progress"]) == 0
    assert [r["step"] for r in rows(out / "validation.jsonl")] == [1, 2, 3, 4]
    assert [r["step"] for r in rows(out / "log.jsonl")] == [2, 4] and threads[-1] == 2


# --------------------------------------------------------------------------- 3 and 4: a cache's splits and rate


def test_a_file_in_train_and_test_is_refused_when_the_cache_is_built(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with open(corpus / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"path": "audio/1.wav", "split": "test"}) + "\n")
    with pytest.raises(CorpusError) as e:
        build_cache(corpus, tmp_path / "cache", progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{corpus / 'manifest.jsonl'}:6: audio/1.wav is listed in test here and in train at line 2")
    assert "\n" not in msg and not (tmp_path / "cache").exists()


def test_cache_mode_refuses_a_tokenizer_of_another_rate(caches: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cache, _ = caches
    cfg = AudioTokenizerConfig(sample_rate=32000, vq=VQConfig(dim=160, codebook_size=16), decoder_channels=16,
                               decoder_blocks=1)
    tok = save_module(AudioTokenizer(cfg), tmp_path / "tok32k")
    out = tmp_path / "run"
    rc, err = _cli(capsys, "--data", str(cache), "--out", str(out), "--init-from", str(tok), "--steps", "1",
                   "--crop-tokens", "8", "--batch-size", "2", "--val-clips", "1", "--no-progress")
    assert rc == 2 and err.strip() == (f"mmtok: error: --init-from {tok} works at 32000 Hz, but the audio of cache "
                                       f"{cache} is 16000 Hz: give a model made for 16000 Hz audio")
    assert not out.exists()
    ns = audio_train.build_parser().parse_args(["--data", str(cache), "--out", str(out), "--synthetic", "2"])
    synth = train_data.cache_material(ns, sample_rate=8000)[0][-2:]  # made at the model's rate
    assert all(torch.equal(a, b) for a, b in zip(synth, train_data.synthetic_clips(2, seed=0, sample_rate=8000),
                                                 strict=True))


# --------------------------------------------------------------------------- 5 and 6: runs that cannot go as asked


def test_resume_without_a_train_state_says_it_starts_afresh_as_the_vocoder_does(
        caches: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(tmp_path / "data")
    out = tmp_path / "run"
    rc, err = _cli(capsys, "--data", str(data), "--out", str(out), *SMALL, "--steps", "1", "--resume")
    assert rc == 0 and f"mmtok: {out} {AFRESH} with the flags given" in err.splitlines()
    cache, _ = caches
    voc = tmp_path / "voc"
    assert vocoder_train.main(run_args(cache, voc, "--steps", "1", "--resume")) == 0
    assert f"mmtok: {voc} {AFRESH} with the flags given" in capsys.readouterr().err.splitlines()
    shutil.rmtree(out / "train-state")  # its model alone: nothing to continue, and the model is not overwritten
    before = (out / "model" / "model.safetensors").read_bytes()
    rc, err = _cli(capsys, "--data", str(data), "--out", str(out), "--resume", "--steps", "2")
    assert rc == 2 and f"--resume: {out} holds no train-state/ to continue from" in err
    assert (out / "model" / "model.safetensors").read_bytes() == before


def test_a_val_fraction_that_leaves_no_training_clip_is_refused(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(tmp_path / "data")
    rc, err = _cli(capsys, "--data", str(data), "--out", str(tmp_path / "run"), *SMALL, "--val-fraction", "0.95")
    assert rc == 2 and err.strip() == (f"mmtok: error: --val-fraction 0.95 leaves no training clips of 3 files in "
                                       f"--data {data}: give a smaller --val-fraction")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 7 and the summary


def test_a_caches_training_clips_are_read_from_its_memmap_when_used(caches: tuple[Path, Path], tmp_path: Path) -> None:
    cache, _ = caches
    ns = audio_train.build_parser().parse_args(["--data", str(cache), "--out", str(tmp_path / "run")])
    sources = train_data.cache_material(ns)[0]
    split = AudioCache(cache, "train")
    assert all(isinstance(s, train_data.CacheClip) for s in sources) and len(sources) == len(split.clips)
    for s, c in zip(sources, split.clips, strict=True):  # the samples the whole split once held, bit for bit
        assert torch.equal(train_data.clip_waveform(s, 16000), torch.from_numpy(split.read(c)))
    assert train_data.clip_waveform(torch.ones(3), 16000).tolist() == [1.0, 1.0, 1.0]


def test_the_summary_names_the_log_mel_l1_and_reads_a_state_that_called_it_loss(tmp_path: Path) -> None:
    """"loss" is the loss the step optimised (here with --mse-weight, more than the L1), "mel_l1" its log-mel L1;
    a state saved when "loss" held the L1 alone reads back with that figure as "mel_l1" and no "loss"."""
    data = _data(tmp_path / "data")
    out = tmp_path / "run"
    assert audio_train.main(["--data", str(data), "--out", str(out), *SMALL, "--steps", "1", "--mse-weight", "1"]) == 0
    last = json.loads((out / "summary.json").read_text())["last"]
    assert set(last) == {"loss", "mel_l1", "usage", "perplexity"} and last["loss"] > last["mel_l1"] > 0
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    meta["train"]["extra"]["loss"] = meta["train"]["extra"].pop("mel_l1")  # as an earlier version saved it
    path.write_text(json.dumps(meta))
    assert audio_train.main(["--data", str(data), "--out", str(out), "--resume"]) == 0  # at its steps already
    assert json.loads((out / "summary.json").read_text())["last"] == {k: v for k, v in last.items() if k != "loss"}


def test_the_trainer_finds_every_sound_the_other_commands_read(tmp_path: Path) -> None:
    """.aiff, .au and .opus files are sounds to mmtok encode and tokenize; the trainer's folder search takes them too."""
    import soundfile as sf

    from mmtok.audio.io import load_audio
    from mmtok.audio.train_data import find_audio

    x = (0.1 * np.sin(np.arange(16000) * 0.05)).astype("float32")
    made = []
    for name, fmt, subtype in (("a.aiff", "AIFF", None), ("b.au", "AU", None), ("c.opus", "OGG", "OPUS"),
                               ("d.wav", "WAV", None)):
        sf.write(tmp_path / name, x, 16000, format=fmt, subtype=subtype)
        made.append(tmp_path / name)
    assert find_audio(tmp_path) == made
    assert all(load_audio(p, target_rate=16000).numel() > 0 for p in made)
