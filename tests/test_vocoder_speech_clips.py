"""A vocoder run asked for validation clips (``--val-clips``) whose corpus marks no file ``"kind": "speech"`` says
that STOI and PESQ-WB go unmeasured, and why, instead of leaving the figures out unsaid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtok.audio import vocoder_train
from mmtok.audio.vocoder_data import build_cache
from tests.test_vocoder_cli import TINY, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def _corpus(root: Path, kind: str) -> Path:
    corpus = write_corpus(root / "corpus")
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps({**r, "kind": kind}) + "\n" for r in rows))
    build_cache(corpus, root / "cache", progress=False)
    return root / "cache"


def _args(cache: Path, out: Path, clips: str) -> list[str]:
    tiny = list(TINY)
    tiny[tiny.index("--val-clips") + 1] = clips
    return ["--cache", str(cache), "--out", str(out), *tiny, "--val-clip-seconds", "1", "--steps", "2"]


def test_clips_asked_for_in_a_corpus_without_speech_are_said_to_go_unscored(tmp_path, capsys) -> None:
    cache = _corpus(tmp_path, "sounds")
    assert vocoder_train.main(_args(cache, tmp_path / "run", "2")) == 0
    err = capsys.readouterr().err
    assert "no validation clip is scored for STOI and PESQ-WB" in err and '"kind": "speech"' in err


def test_no_note_without_clips_asked_for_or_with_speech(tmp_path, capsys) -> None:
    cache = _corpus(tmp_path / "a", "sounds")
    assert vocoder_train.main(_args(cache, tmp_path / "run0", "0")) == 0
    assert "no validation clip" not in capsys.readouterr().err
    cache = _corpus(tmp_path / "b", "speech")
    assert vocoder_train.main(_args(cache, tmp_path / "run1", "2")) == 0
    assert "no validation clip" not in capsys.readouterr().err


def test_best_by_stoi_names_the_kind_field(tmp_path, capsys) -> None:
    cache = _corpus(tmp_path, "sounds")
    assert vocoder_train.main([*_args(cache, tmp_path / "run", "2"), "--best-by", "stoi"]) == 2
    err = capsys.readouterr().err
    assert "--best-by stoi picks best/ by a figure no validation clip can be given" in err
    assert '"kind": "speech"' in err
