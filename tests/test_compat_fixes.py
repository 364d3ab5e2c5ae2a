"""Artefacts of older mmtok releases: runs, shards, vocabularies and tokenizer records that lack fields written
today are used, or refused, with words that name what they lack."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import CorpusError, VocabularyError
from mmtok.data.export import export_shards
from mmtok.data.shards import open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.info import describe, format_info
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import sample_run
from mmtok.lm.train import train
from mmtok.lm.train_checks import check_same_shards
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary
from tests.test_hardening_train import shards as hardening_shards
from tests.test_hardening_train import small

shards = hardening_shards  # the same small corpus, made once for this module


def test_a_run_saved_before_shard_digests_says_on_resume_that_its_shards_were_not_checked(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = train(small(shards, tmp_path / "run", steps=2), progress=False)
    config = run / "ckpt-0000002" / "config.json"
    meta = json.loads(config.read_text())
    recorded = dict(meta["config"])
    del meta["config"]["shards"]  # as a release before shard digests wrote it
    config.write_text(json.dumps(meta))
    capsys.readouterr()
    train(small(shards, run, steps=3), resume=True, progress=False)
    err = capsys.readouterr().err
    assert (f"mmtok train: {run} was saved before shard digests were recorded, so the contents of {shards} could "
            f"not be checked against the shards it trained on ({shards}), only their vocabulary") in err
    assert check_same_shards(run, str(shards), recorded, recorded) is None  # a run of today: its digest checked


class Image:
    """An image tokenizer's record: its codebook, fingerprint and checkpoint label."""

    def __init__(self, codebook_size: int, version: int) -> None:
        self.codebook_size, self.fingerprint = codebook_size, f"image-v{version}"
        self.checkpoint_label = f"image (image v{version})"

    def encode(self, x: object) -> None: ...

    def decode(self, codes: object) -> None: ...


def test_an_old_vocabulary_with_a_newer_image_model_names_both_versions_before_their_sizes() -> None:
    old = Vocabulary.for_tokenizers(text=Interleaver(None).text, image=Image(1024, 2))
    with pytest.raises(VocabularyError) as e:
        Interleaver(old, image=Image(1280, 3))
    msg = str(e.value)
    assert msg == ("the vocabulary's image ids are from the image tokenizer with fingerprint image-v2 [image (image "
                   "v2)], but the image tokenizer given has fingerprint image-v3 [image (image v3)] (1024 ids vs "
                   "1280); pass the tokenizer the vocabulary was built with")
    assert "build the vocabulary" not in msg
    unrecorded = Vocabulary(256, ranges={"image": 1024})  # records no image model: the sizes alone say it
    with pytest.raises(ValueError, match="build the vocabulary from these tokenizers"):
        Interleaver(unrecorded, image=Image(1280, 3))


def test_text_sampling_of_a_run_made_with_an_older_audio_model_goes_on_and_audio_out_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TokenizerSpec(image="image", audio="audio")
    now = build_interleaver(spec).vocab
    record = Vocabulary(now.text_size, ranges={name: len(now.range(name)) for name in ("image", "audio")},
                        sources={**now.sources, "audio": "0123456789abcdef"},
                        labels={**now.labels, "audio": "audio (audio v0)"}).to_dict()
    torch.manual_seed(0)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=now.size), max_seq_len=64)
    run = tmp_path / "run"  # as a run trained with an audio model the shipped one has replaced
    save_checkpoint(run / "ckpt-0000001", kind=Transformer.KIND, tensors=Transformer(cfg).state_dict(),
                    config={"model": asdict(cfg), "vocab": record, "tokenizers": asdict(spec)})
    out = sample_run(run, "a cat", max_new_tokens=8, seed=0)
    assert out.pretty.startswith("a cat") and len(out.ids) > len("a cat")
    err = capsys.readouterr().err
    assert f"mmtok sample: {run} was trained with the audio tokenizer 0123456789abcdef [audio (audio v0)]" in err
    assert "audio it samples is shown as codes, not decoded" in err
    with pytest.raises(VocabularyError, match=r"audio tokenizer: 0123456789abcdef \[audio \(audio v0\)\] vs "):
        sample_run(run, "a cat", audio_out=tmp_path / "a.wav", seed=0, audio_tokens=(1, 4))
    assert not (tmp_path / "a.wav").exists()


def test_a_tokenizer_folder_recorded_relative_to_where_tokenize_ran_is_named_as_such_with_the_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vocab = Vocabulary(256)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=vocab.size), max_seq_len=32)
    run = tmp_path / "old" / "run"  # as a release that kept --text as typed wrote it
    save_checkpoint(run / "ckpt-0000001", kind=Transformer.KIND, tensors=Transformer(cfg).state_dict(),
                    config={"model": asdict(cfg), "vocab": vocab.to_dict(), "train": {"data": "shards"},
                            "tokenizers": {"text": "work/bpe", "image": None, "audio": None, "video": None}})
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(CorpusError) as e:
        sample_run(run, "the cat", max_new_tokens=4, seed=0)
    msg = str(e.value)
    assert msg.startswith(f"{run} (its training settings, from its shards shards) records the text tokenizer as "
                          "'work/bpe', a path its shards recorded relative to the folder mmtok tokenize ran in")
    assert f"there is no work/bpe from {tmp_path / 'elsewhere'}: pass the tokenizer with --text" in msg


def test_info_describes_each_export_and_one_an_earlier_mmtok_wrote_without_its_mark(
        shards: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    opened = open_shards(shards)
    for to, name in (("parquet", "docs.parquet"), ("bin", "flat"), ("datasets", "docs-ds")):
        export_shards(shards, to=to, out=tmp_path / name)
        info = describe(tmp_path / name)
        assert (info["what"], info["format"].split()[0], info["documents"]) == ("export", to, opened.num_docs)
        assert info.get("mark", f"mmtok-export-{to} v1") == f"mmtok-export-{to} v1"
        assert info["fingerprint"] == opened.vocab.fingerprint
    assert describe(tmp_path / "flat")["tokens"] == opened.num_tokens
    table = pq.read_table(tmp_path / "docs.parquet")  # as an earlier mmtok wrote it: no mark in its metadata
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "old.parquet")
    (tmp_path / "docs-ds" / "mmtok_export.json").unlink()
    for old in ("old.parquet", "docs-ds"):
        info = describe(tmp_path / old)
        assert info["documents"] == opened.num_docs and info["fingerprint"] is None
        assert info["mark"] == "none (an export of an earlier mmtok: its vocabulary is not recorded)"
    assert format_info(describe(tmp_path / "old.parquet")).startswith(
        f"export: {tmp_path / 'old.parquet'}\n  format     parquet (mmtok export --to parquet)\n  documents  ")
