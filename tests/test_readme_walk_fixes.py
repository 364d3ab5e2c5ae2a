"""What a first-time user following the README met: a picture given to ``mmtok tokenize`` as its corpus, a
misspelt code file given to ``mmtok info``, a text tokenizer ``mmtok info`` described without its vocabulary,
a segment key misspelt in a corpus, and ``mmtok sample`` calling its own earlier ``.jpg`` a file it did not
write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from image_helpers import save_smooth_picture

from mmtok.cli import main
from mmtok.core.errors import CorpusError, MissingFileError, UsageError
from mmtok.data.corpus import tokenize_corpus
from mmtok.info import describe, format_info
from mmtok.lm.sample_output import check_output, write_image
from mmtok.stream.segments import segment_shape
from mmtok.stream.text import train_bpe


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("name", ["photo.jpg", "speech.wav", "clip.mp4"])
def test_tokenize_refuses_a_media_file_given_as_its_corpus_before_any_work(tmp_path: Path, name: str) -> None:
    corpus = tmp_path / name
    corpus.write_bytes(b"\xff\xd8\xff\xe0 not text")  # read as JSONL before: every line skipped, a folder written
    out = tmp_path / "shards"
    with pytest.raises(CorpusError, match=rf"{name} is an? (image|sound|video) .*not a corpus.*JSONL"):
        tokenize_corpus(corpus, out)
    assert not out.exists()


def test_mmtok_tokenize_on_a_picture_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picture = save_smooth_picture(tmp_path / "photo.jpg", size=32)
    assert main(["tokenize", str(picture), "--out", str(tmp_path / "s"), "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert f"{picture} is an image" in err and '{"image": "photo.jpg"}' in err, err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["codes/phot.jpg.npz", "docs.parquet"])
def test_info_on_a_misspelt_file_says_no_such_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   name: str) -> None:
    path = tmp_path / name
    with pytest.raises(MissingFileError, match="no such file"):
        describe(path)
    assert main(["info", str(path)]) == 2
    err = _one_error_line(capsys)
    assert f"{path}: no such file" in err and "checkpoint" not in err and "folder" not in err, err


def test_info_on_a_text_tokenizer_gives_its_vocabulary_size_and_fingerprint(tmp_path: Path) -> None:
    tok = train_bpe(["the cat sat on the mat"] * 40, vocab_size=270)
    folder = tok.save(tmp_path / "bpe")
    d = describe(folder)
    assert d["kind"] == "text" and d["vocab_size"] == tok.vocab_size and d["fingerprint"] == tok.fingerprint
    text = format_info(d)
    assert f"vocab_size     {tok.vocab_size}" in text and tok.fingerprint in text, text


def test_a_misspelt_segment_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"not one with the keys 'txt'$"):
        segment_shape({"txt": "hello"}, 0)
    with pytest.raises(ValueError, match=r"not null$"):
        segment_shape(None, 2)


def test_tokenize_skips_a_misspelt_key_naming_it(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": [{"text": "fine"}]}\n{"segments": [{"txt": "typo"}]}\n')
    manifest = tokenize_corpus(corpus, tmp_path / "shards", progress=False)
    assert manifest["docs"] == 1 and manifest["skipped"][0]["line"] == 2
    assert "'txt'" in manifest["skipped"][0]["reason"], manifest["skipped"]
    assert json.loads((tmp_path / "shards" / "manifest.json").read_text())["skipped"] == manifest["skipped"]


def test_sample_does_not_deny_writing_its_own_earlier_jpeg(tmp_path: Path) -> None:
    earlier = tmp_path / "a.jpg"
    write_image(earlier, torch.rand(3, 16, 16))  # as an earlier mmtok sample --image-out a.jpg wrote it
    with pytest.raises(UsageError) as refused:
        check_output(earlier, audio=False)
    message = str(refused.value)
    assert "was not written" not in message and "keeps no mark of 'mmtok sample'" in message, message
    assert "a .jpg file cannot" in message and "move it, or give another name" in message, message


def test_sample_still_says_a_png_of_yours_was_not_written_by_it(tmp_path: Path) -> None:
    mine = save_smooth_picture(tmp_path / "mine.png", size=16)
    with pytest.raises(UsageError, match=r"mine\.png is there and was not written by 'mmtok sample'"):
        check_output(mine, audio=False)


def test_the_text_trainer_says_a_picture_is_no_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    with pytest.raises(SystemExit) as exit_:
        main(["train-tokenizer", "text", str(photo), "--vocab-size", "300", "--out", str(tmp_path / "bpe")])
    said = capsys.readouterr().err
    assert exit_.value.code == 2 and "iconv" not in said  # before: "convert it first, e.g. iconv -f latin1 -t utf-8"
    assert f"{photo} is a picture file (by its extension), not text" in said


def test_info_on_a_transformers_folder_says_what_it_is(tmp_path: Path) -> None:
    from mmtok.core.errors import CheckpointError
    from mmtok.info import describe

    folder = tmp_path / "tiny-hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(CheckpointError) as err:
        describe(folder)  # before: "config.json is not an mmtok checkpoint config"
    assert str(err.value).startswith(f"{folder} is a transformers model folder (model_type 'llama'), as mmtok "
                                     "export-hf writes it, not an mmtok checkpoint: load it with transformers")
