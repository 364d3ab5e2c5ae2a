"""What the vocoder command refuses before any work: a resumed stage-2 run whose --tokenizer now holds other
weights, an --attach pair that does not fit (another tokenizer than the vocoder was trained on) or a folder
it may not write, a --best-by figure no validation clip gives, a checkpoint made for another sample rate,
checkpoints that are not there, a manifest listing a file in both cached splits, and options it would ignore."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from mmtok.audio import vocoder_train
from mmtok.audio.attach import attach_vocoder
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_data import build_cache
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import CheckpointError, CorpusError
from mmtok.core.module_io import load_module, save_module
from mmtok.vq.prune import save_pruned
from mmtok.vq.quantizer import VQConfig
from tests.test_vocoder import tiny_tokenizer, voiced
from tests.test_vocoder_cli import TINY, last_error, provenance, run_args, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

assert TINY[:6] == ["--dim", "16", "--intermediate", "32", "--blocks", "1"]
UNSIZED = TINY[6:]  # a run started --init-from takes its model's sizes


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vocoder-checks")
    build_cache(write_corpus(root / "corpus"), root / "cache", progress=False)
    return root / "cache"


def other_weights(tok_dir: Path, out: Path) -> Path:
    """``tok_dir``'s tokenizer with another codebook (another fingerprint, the same front end) at ``out``."""
    tok = load_module(AudioTokenizer, tok_dir)
    with torch.no_grad():
        tok.vq.embed.mul_(-1.0)
    return save_module(tok, out)


def fingerprint(tok_dir: Path) -> str:
    return load_module(AudioTokenizer, tok_dir).fingerprint


def test_a_resumed_stage_two_run_refuses_a_tokenizer_folder_that_now_holds_other_weights(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept = tiny_tokenizer(tmp_path / "kept")
    tok, out = shutil.copytree(kept, tmp_path / "tok"), tmp_path / "run"
    args = run_args(cache, out, "--features", "decoded", "--tokenizer", str(tok))
    assert vocoder_train.main([*args, "--steps", "2"]) == 0
    shutil.rmtree(tok)
    other_weights(kept, tok)  # the same folder, retrained in place
    assert vocoder_train.main([*args, "--steps", "4", "--resume"]) == 2
    err = last_error(capsys)
    assert "--tokenizer" in err and fingerprint(kept) in err and fingerprint(tok) in err
    assert provenance(out / "model")["steps"] == 2  # not one step trained on the other tokenizer
    shutil.rmtree(tok)
    shutil.copytree(kept, tok)  # its own weights again: resumed
    assert vocoder_train.main([*args, "--steps", "4", "--resume"]) == 0
    assert provenance(out / "model")["steps"] == 4


def test_attach_joins_a_stage_two_vocoder_to_the_tokenizer_it_was_trained_on(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = tiny_tokenizer(tmp_path / "tok")
    other = other_weights(tok, tmp_path / "other")
    s2 = tmp_path / "s2"
    assert vocoder_train.main(run_args(cache, s2, "--steps", "2", "--features", "decoded", "--tokenizer", str(tok))) == 0
    assert vocoder_train.main(["--attach", str(tmp_path / "joined"), "--vocoder", str(s2 / "best")]) == 0
    joined = provenance(tmp_path / "joined")["tokenizer"]  # no --tokenizer: the one it was trained on
    assert joined["source"] == str(tok.resolve()) and joined["fingerprint"] == fingerprint(tok)
    capsys.readouterr()
    assert vocoder_train.main(["--attach", str(tmp_path / "mixed"), "--vocoder", str(s2 / "best"),
                               "--tokenizer", str(other)]) == 2
    err = last_error(capsys)
    assert "--tokenizer" in err and fingerprint(tok) in err and fingerprint(other) in err
    assert "leave --tokenizer out to take the tokenizer it was trained on" in err  # it was given: the hint fits
    assert not (tmp_path / "mixed").exists()
    # its codebook pruned: the kept codes decode as before, so the vocoder fits
    pruned = tmp_path / "pruned"
    save_pruned(load_module(AudioTokenizer, tok), torch.arange(32.0), 16, pruned, source=str(tok), counted_on={})
    assert vocoder_train.main(["--attach", str(tmp_path / "small"), "--vocoder", str(s2 / "best"),
                               "--tokenizer", str(pruned)]) == 0
    # the tokenizer it was trained on moved away: the checkpoint it was attached to has it
    tok.rename(tmp_path / "moved")
    assert vocoder_train.main(["--attach", str(tmp_path / "again"), "--vocoder", str(tmp_path / "joined")]) == 0
    assert provenance(tmp_path / "again")["tokenizer"]["source"] == str((tmp_path / "joined").resolve())
    assert vocoder_train.main(["--attach", str(tmp_path / "lost"), "--vocoder", str(s2 / "best")]) == 2
    assert f"{tok.resolve()}, which is not there" in last_error(capsys)
    # left out, the tokenizer taken is the one the vocoder names; when another model now stands at that path,
    # the hint is to name the right one, not to leave out what was left out
    shutil.copytree(other, tok)
    assert vocoder_train.main(["--attach", str(tmp_path / "stale"), "--vocoder", str(s2 / "best")]) == 2
    err = last_error(capsys)
    assert "name the tokenizer it was trained on with --tokenizer" in err and "leave --tokenizer out" not in err, err
    # a vocoder trained on the true log-mel reads any tokenizer's
    assert vocoder_train.main(run_args(cache, tmp_path / "s1", "--steps", "2")) == 0
    assert vocoder_train.main(["--attach", str(tmp_path / "mixed"), "--vocoder", str(tmp_path / "s1" / "best"),
                               "--tokenizer", str(other)]) == 0


def test_attach_never_replaces_a_checkpoint_of_another_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    tok = tiny_tokenizer(tmp_path / "tok")
    voc = save_module(Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1)), tmp_path / "voc")
    image = save_checkpoint(tmp_path / "image", kind="image", config={}, tensors={"w": torch.zeros(2)})
    for target in (voc, image):  # the --vocoder folder itself; an image tokenizer
        before = (target / "config.json").read_text()
        assert vocoder_train.main(["--attach", str(target), "--tokenizer", str(tok), "--vocoder", str(voc)]) == 2
        err = last_error(capsys)
        assert f"--attach {target}" in err and "not one of kind 'audio'" in err
        assert (target / "config.json").read_text() == before
    with pytest.raises(CheckpointError, match="kind 'vocoder'"):
        attach_vocoder(tok, voc, voc)
    assert vocoder_train.main(["--attach", str(tmp_path / "new"), "--tokenizer", str(tok), "--vocoder", str(voc)]) == 0
    again = ["--attach", str(tmp_path / "new"), "--tokenizer", str(tok), "--vocoder", str(voc), "--mel-match", "1"]
    assert vocoder_train.main(again) == 0  # an audio tokenizer checkpoint there is replaced
    assert load_module(AudioTokenizer, tmp_path / "new").cfg.vocoder.mel_match == 1


def test_best_by_a_figure_no_validation_clip_gives_is_refused_before_training(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "short"  # the cache's validation files last 1 s: none is a STOI clip (speech of 3 s or more)
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--val-clips", "2", "--best-by", "stoi")) == 2
    err = last_error(capsys)
    assert "--best-by stoi" in err and '"speech"' in err and "mel_l1" in err
    assert not out.exists() or not any(out.iterdir())  # a new run may start there
    root = tmp_path / "long"
    corpus = write_corpus(root / "corpus", ("train", "train"))
    sf.write(corpus / "audio" / "v.wav", voiced(3.2, seed=9), 16000)
    with open(corpus / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"path": "audio/v.wav", "split": "validation", "kind": "speech"}) + "\n")
    build_cache(corpus, root / "cache", progress=False)
    monkeypatch.setitem(sys.modules, "pesq", None)  # PESQ not installed
    long = ["--val-clips", "1", "--val-clip-seconds", "3.2"]
    assert vocoder_train.main(run_args(root / "cache", root / "p", "--steps", "2", *long, "--best-by", "pesq_wb")) == 2
    assert "pip install pesq" in last_error(capsys) and not (root / "p" / "train-state").exists()
    assert vocoder_train.main(run_args(root / "cache", root / "s", "--steps", "2", *long, "--best-by", "stoi")) == 0
    assert 0 < provenance(root / "s" / "best")["validation"]["stoi"] <= 1


def test_a_checkpoint_made_for_another_sample_rate_is_refused_before_any_work(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    voc24 = save_module(Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1, sample_rate=24000)), tmp_path / "v24")
    tok24 = save_module(AudioTokenizer(AudioTokenizerConfig(sample_rate=24000, vq=VQConfig(dim=160, codebook_size=8),
                                                            decoder_channels=8)), tmp_path / "t24")
    corpus, new_cache = write_corpus(tmp_path / "corpus"), tmp_path / "new-cache"
    assert vocoder_train.main(["--corpus", str(corpus), "--cache", str(new_cache), "--out", str(tmp_path / "a"),
                               *UNSIZED, "--steps", "2", "--init-from", str(voc24)]) == 2
    err = last_error(capsys)
    assert f"--init-from {voc24}" in err and "24000 Hz" in err and "16000 Hz" in err
    assert not new_cache.exists()  # refused before the cache was built
    assert vocoder_train.main(run_args(cache, tmp_path / "b", "--steps", "2", "--features", "decoded",
                                       "--tokenizer", str(tok24))) == 2
    assert f"--tokenizer {tok24}" in last_error(capsys) and not (tmp_path / "b").exists()


def test_the_checkpoints_and_the_attach_folder_are_checked_before_any_work(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, typo = tmp_path / "run", tmp_path / "tok-typo"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--attach", str(tmp_path / "ship"),
                                       "--tokenizer", str(typo))) == 2
    assert f"--tokenizer {typo}" in last_error(capsys) and not out.exists()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("mine")
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--attach", str(notes))) == 2
    assert f"--attach {notes}" in last_error(capsys) and not out.exists()
    assert sorted(p.name for p in notes.iterdir()) == ["mine.txt"]
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--attach", str(out / "joined"))) == 2
    assert "overlap" in last_error(capsys) and not out.exists()
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--attach", str(tmp_path))) == 2
    assert "overlap" in last_error(capsys) and not out.exists()
    corpus, new_cache = write_corpus(tmp_path / "corpus"), tmp_path / "new-cache"
    assert vocoder_train.main(["--corpus", str(corpus), "--cache", str(new_cache), "--out", str(out), *UNSIZED,
                               "--init-from", str(typo)]) == 2
    assert f"--init-from {typo}" in last_error(capsys) and not new_cache.exists()
    assert vocoder_train.main(["--attach", str(tmp_path / "j"), "--vocoder", str(typo)]) == 2
    assert f"--vocoder {typo}" in last_error(capsys)


def test_a_file_listed_in_both_cached_splits_is_refused(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", ("train", "train", "validation"))
    with open(corpus / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"path": "./audio/0.wav", "split": "validation", "kind": "speech"}) + "\n")
    with pytest.raises(CorpusError) as e:
        build_cache(corpus, tmp_path / "cache", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{corpus / 'manifest.jsonl'}:4: ./audio/0.wav is listed in validation")
    assert "in train at line 1" in msg and not (tmp_path / "cache").exists()


def test_options_the_command_would_ignore_are_refused(cache: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    voc = save_module(Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)), tmp_path / "voc")
    assert vocoder_train.main(["--cache", str(cache), "--vocoder", str(voc)]) == 2
    assert "--vocoder" in (err := last_error(capsys)) and "--attach" in err
    assert vocoder_train.main(["--cache", str(cache), "--train-decoder", "--features", "decoded"]) == 2
    assert "--train-decoder" in (err := last_error(capsys)) and "--out" in err
    run = tmp_path / "run"
    start = ["--cache", str(cache), "--out", str(run), *UNSIZED, "--init-from", str(voc)]
    assert vocoder_train.main([*start, "--steps", "2", "--dim", "64", "--blocks", "3"]) == 2
    assert last_error(capsys).startswith("mmtok: error: --dim, --blocks: ") and not run.exists()
    assert vocoder_train.main([*start, "--steps", "2"]) == 0
    resumed = ["--cache", str(cache), "--out", str(run), *UNSIZED, "--resume", "--steps", "4"]
    assert vocoder_train.main([*resumed, "--intermediate", "64"]) == 2  # the run's own, from --init-from
    assert "--intermediate" in last_error(capsys) and provenance(run / "model")["steps"] == 2
    assert vocoder_train.main(resumed) == 0
