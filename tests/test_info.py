"""`mmtok info`: what a shard folder, a run folder and a checkpoint hold, read from what they wrote."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.cli import main
from mmtok.core.checkpoint import read_config, save_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shards import open_shards
from mmtok.info import describe, format_info
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.train import train
from tests.test_data import BAD_DOCS, SPEC, make_corpus
from tests.test_hardening_train import small


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("info")
    corpus = make_corpus(folder, n_docs=30)
    for i in range(2):
        tokenize_corpus(corpus, folder / "shards", tokenizers=SPEC, shard_tokens=300, part=(i, 2))
    train(small(folder / "shards", folder / "run", steps=4), progress=False)
    return folder


def test_shards_are_described_from_their_manifests(made: Path) -> None:
    d = describe(made / "shards")
    s = open_shards(made / "shards")
    assert d["what"] == "shards" and d["parts"] == 2 and d["shards"] == len(s.tokens) > 2
    assert d["documents"] == len(s) == 30 - sum(k <= 30 for k in BAD_DOCS)
    assert d["skipped_documents"] == sum(k <= 30 for k in BAD_DOCS)
    assert d["tokens"] == s.num_tokens == sum(d["tokens_by_modality"].values())
    assert {"text", "special", "image", "audio"} <= set(d["tokens_by_modality"])
    assert d["fingerprint"] == s.vocab.fingerprint and d["vocab_size"] == s.vocab.size
    assert d["bytes"] == sum((p / e["bin"]).stat().st_size for p in sorted((made / "shards").glob("part-*"))
                             for e in json.loads((p / "manifest.json").read_text())["shards"])
    assert set(d["tokenizers"]) == {"text", "image", "audio"}


def test_a_run_is_described_by_its_newest_checkpoint_and_log(made: Path) -> None:
    d = describe(made / "run")
    last = json.loads((made / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert d["what"] == "run" and d["step"] == d["steps"] == 4 and d["checkpoints"][-1] == "ckpt-0000004"
    model, _, _ = mmtok.load_run(made / "run")
    assert d["last_loss"] == last["loss"] and d["parameters"] == sum(p.numel() for p in model.parameters())
    assert d["fingerprint"] == describe(made / "shards")["fingerprint"]
    assert describe(made / "run" / "ckpt-0000004")["kind"] == "transformer"
    assert describe(made / "run" / "ckpt-0000004")["parameters"] == d["parameters"]
    log = made / "run" / "log.jsonl"
    kept = log.read_bytes()
    try:  # a long log is read from its end, and a line cut by a kill is passed over
        log.write_bytes(b'{"step": 0, "loss": 9.0}\n' * 5000 + kept + b'{"step": 5, "lo')
        assert describe(made / "run")["last_loss"] == last["loss"]
    finally:
        log.write_bytes(kept)


@pytest.mark.parametrize("tie", [True, False])
def test_a_checkpoint_and_its_run_count_the_same_parameters(tmp_path: Path, tie: bool) -> None:
    """A tied output head is stored beside the embedding it shares: both paths count it once, as the model does."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=300, n_layer=1, n_head=2, n_kv_head=1, d_model=32, max_seq_len=16,
                      tie_embeddings=tie)
    model = Transformer(cfg)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    assert "head.weight" in tensors
    ckpt = save_checkpoint(tmp_path / "run" / "ckpt-0000002", kind=Transformer.KIND, tensors=tensors,
                           config={"model": asdict(cfg)})
    want = sum(p.numel() for p in model.parameters())
    assert describe(tmp_path / "run")["parameters"] == describe(ckpt)["parameters"] == want


def test_the_last_loss_of_each_modality_is_its_newest_in_the_log(tmp_path: Path) -> None:
    """A step's log row has only the modalities its batch held: each modality's loss is the newest one logged,
    with the step it was logged at when those differ."""
    cfg = ModelConfig(vocab_size=300, n_layer=1, n_head=2, n_kv_head=1, d_model=32, max_seq_len=16)
    save_checkpoint(tmp_path / "run" / "ckpt-0000003", kind=Transformer.KIND,
                    tensors={k: v.clone() for k, v in Transformer(cfg).state_dict().items()},
                    config={"model": asdict(cfg)})
    rows = [{"step": 1, "loss": 3.0, "lr": 0.1, "tokens_per_s": 1.0, "loss_text": 3.1, "loss_audio": 2.9},
            {"step": 2, "loss": 2.5, "lr": 0.1, "tokens_per_s": 1.0, "loss_text": 2.4, "loss_image": 2.6},
            {"step": 3, "loss": 2.0, "lr": 0.1, "tokens_per_s": 1.0, "loss_text": 1.9}]
    log = tmp_path / "run" / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = describe(tmp_path / "run")
    assert d["last_loss"] == 2.0 and d["last_loss_by_modality"] == {"text": 1.9, "image": 2.6, "audio": 2.9}
    assert d["last_loss_step_by_modality"] == {"text": 3, "image": 2, "audio": 1}
    assert "last_loss_step_by_modality" in format_info(d)
    log.write_text("".join(json.dumps(r) + "\n" for r in rows[:1]))  # all from one step: no steps to tell apart
    d = describe(tmp_path / "run")
    assert d["last_loss_by_modality"] == {"text": 3.1, "audio": 2.9} and d["last_loss_step_by_modality"] is None


@pytest.mark.parametrize("name", ["image", "audio", "video"])
def test_a_tokenizer_counts_its_parameters_not_its_codebook_buffers(name: str) -> None:
    """The VQ codebook and its EMA statistics are buffers: not parameters, shown on their own."""
    tok = mmtok.load(name)
    vq = tok.image.vq if name == "video" else tok.vq
    d = describe(name)
    stored = sum(t.numel() for t in tok.state_dict().values())
    assert d["parameters"] == sum(p.numel() for p in tok.parameters()) < stored
    assert d["codebook"].startswith(f"{vq.codebook_size:,} codes of {vq.embed.shape[1]} values")


def test_a_codebook_alone_has_no_parameters(tmp_path: Path) -> None:
    from mmtok.vq.quantizer import VectorQuantizer, VQConfig

    assert describe(mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), tmp_path / "vq"))["parameters"] == 0


@pytest.mark.parametrize("name", ["audio", "image"])
def test_a_shipped_tokenizer_is_described_with_its_version_and_fingerprint(name: str) -> None:
    import mmtok

    d = describe(name)
    tok = mmtok.load(name)
    prov = read_config(d["path"])["provenance"]
    assert d["kind"] == name and d["model_version"] == prov["model_version"]
    assert d["codebook_size"] == tok.codebook_size and d["fingerprint"] == tok.fingerprint
    assert 1 < d["megabytes"] <= 40 and d["parameters"] > 10_000
    text = format_info(d)
    assert text.splitlines()[0] == f"checkpoint: {d['path']}" and tok.fingerprint in text
    assert len(d["chosen_on"]) > 100 and max(len(line) for line in text.splitlines()[1:]) <= 100  # wrapped
    assert ("decoder" in d) == (name == "audio")


def test_an_audio_checkpoint_names_how_it_decodes(tmp_path: Path) -> None:
    from mmtok.audio.attach import attach_vocoder
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.audio.vocoder import Vocoder
    from mmtok.audio.vocoder_config import VocoderConfig
    from mmtok.core.module_io import save_module
    from mmtok.vq.quantizer import VQConfig

    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8))
    voc = Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1))
    bare = describe(save_module(tok, tmp_path / "bare"))
    assert bare["decoder"] == "griffin-lim" and "stream_lookahead" not in bare  # nothing streams without a vocoder
    plain = describe(attach_vocoder(tok, voc, tmp_path / "plain"))
    assert plain["decoder"] == "learned vocoder"
    reach = tok.decoder.context_tokens + 4  # the vocoder's 8 frames of context, 2 per token
    assert voc.context_frames == 8 and plain["stream_lookahead"] == f"{reach} tokens ({reach / 50:g} s)"
    matched = describe(attach_vocoder(tok, voc, tmp_path / "matched", mel_match=2, mel_match_db=3.0))
    assert matched["decoder"] == "learned vocoder + mel match (2 passes, at most 3 dB)"


def test_the_command_prints_text_or_json_and_refuses_what_it_cannot_read(
        made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["info", str(made / "shards"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == describe(made / "shards")
    assert main(["info", str(made / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run: {made / 'run'}") and "last_loss" in out
    assert main(["info", str(tmp_path)]) == 2  # an empty folder
    assert "nothing to describe" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    stopped = tmp_path / "stopped"  # a tokenize killed part-way: shards, no manifest yet
    stopped.mkdir()
    (stopped / "shard-00000.json").write_text("{}")
    assert main(["info", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert "has not finished" in err and "run the same command again" in err
    (tmp_path / "audio").mkdir()  # a folder that is no checkpoint does not hide the shipped one of its name
    monkeypatch.chdir(tmp_path)
    assert main(["info", "audio"]) == 0 and "model_version" in capsys.readouterr().out
    assert main(["info", str(made / "run" / "log.jsonl")]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        describe(tmp_path)


def test_a_run_held_by_a_live_process_says_so_and_a_stale_lock_does_not(made: Path, tmp_path: Path) -> None:
    import os
    import shutil
    import socket
    import subprocess

    from mmtok.core.run_lock import run_holder

    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    assert describe(run).get("running") is None
    (run / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # as a training process holds it
    said = describe(run)["running"]  # before: nothing said of a run still training
    assert said == (f"yes, by process {os.getpid()} on host {socket.gethostname()} (lock {run / '.lock'}): the "
                    "figures are those of its newest save")
    assert "running" in format_info(describe(run))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the lock is stale
    (run / ".lock").write_text(f"{gone.pid} {socket.gethostname()}\n")
    assert run_holder(run) is None and describe(run).get("running") is None
    (run / ".lock").write_text(f"{os.getpid()} another-host\n")  # another host's: always taken as held
    assert run_holder(run) == f"process {os.getpid()} on host another-host (lock {run / '.lock'})"
