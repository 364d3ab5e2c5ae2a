"""Documents longer than the training window: mmtok train says so in one warning line before the first step
(how many of how many, the longest, and a --seq-len long enough for 95% of them), from the shards' document
offsets alone; the Python API gets the same as a LongDocumentsWarning; a resumed run does not say it again."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmtok.cli import main
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shards import open_shards
from mmtok.lm.train import TrainConfig, train

# byte-level text: a document of n characters is n + 2 tokens (<bos> ... <eos>)
LONG = [70] * 16 + [100, 140]  # 18 documents longer than 64 tokens, the longest 140
SHORT = [20, 30]


def corpus(folder: Path, lengths: list[int]) -> Path:
    """Shards of text documents of exactly ``lengths`` tokens each."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"segments": [chr(97 + k % 26) * (n - 2)]}) for k, n in enumerate(lengths)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    tokenize_corpus(folder / "docs.jsonl", folder / "shards")
    return folder / "shards"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus(tmp_path_factory.mktemp("seqlen"), LONG + SHORT)


def tiny(shards: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), seq_len=64, batch_size=1, steps=1, warmup=0, save_every=1,
                threads=1)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def long_document_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if type(w.message).__name__ == "LongDocumentsWarning"]


def test_train_warns_once_with_the_count_the_longest_and_a_seq_len_that_holds_most(shards: Path,
                                                                                 tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(tiny(shards, tmp_path / "run"), progress=False)
    said = long_document_warnings(record)
    assert len(said) == 1, said
    # 95% of the 20 documents: the 19th longest, 100 tokens, rounded up to a multiple of 64
    assert said[0] == (f"18 of the 20 documents in {shards} are longer than --seq-len 64 (the longest: 140 tokens): "
                       "training windows cut them, so the model never attends over one whole; --seq-len 128 is long "
                       "enough for 95% of the documents (still cut where one crosses a window edge, unless --packing "
                       "documents)")
    from mmtok.lm.windows import LongDocumentsWarning
    assert issubclass(LongDocumentsWarning, UserWarning)
    assert [w.filename for w in record if w.category is LongDocumentsWarning] == [__file__]  # at train's caller


def test_few_long_documents_are_said_with_the_seq_len_that_holds_every_one(tmp_path: Path) -> None:
    shards = corpus(tmp_path / "c", [30] * 39 + [200])
    with pytest.warns(UserWarning, match=r"1 of the 40 documents .* longer than --seq-len 64 \(the longest: 200 "
                      r"tokens\).*; --seq-len 256 is long enough for every document \(still cut where"):
        train(tiny(shards, tmp_path / "run"), progress=False)


def test_no_warning_when_every_document_fits(shards: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(tiny(shards, tmp_path / "run", seq_len=140), progress=False)
    assert long_document_warnings(record) == []


def test_a_resumed_run_does_not_say_it_again(shards: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="longer than --seq-len 64"):
        run = train(tiny(shards, tmp_path / "run"), progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(tiny(shards, run, steps=2), resume=True, progress=False)
    assert long_document_warnings(record) == []


def test_the_command_says_it_in_one_warning_line(shards: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(shards), "--out", str(tmp_path / "run"), "--seq-len", "64",
                 "--batch-size", "1", "--steps", "1", "--warmup", "0", "--threads", "1", "--no-progress"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "longer than" in line]
    assert len(err) == 1, err
    assert err[0].startswith("mmtok: warning: 18 of the 20 documents in ") and "--seq-len 128 is long enough for 95%" in err[0]


def test_document_lengths_come_from_the_offsets_without_reading_tokens(shards: Path) -> None:
    from mmtok.lm.windows import document_lengths, window_fit

    opened = open_shards(shards)
    opened.tokens = [None] * len(opened.tokens)  # type: ignore[list-item]  # any read of ids would fail
    lengths = document_lengths(opened)
    assert lengths.tolist() == LONG + SHORT
    fit = window_fit(lengths, seq_len=64)
    assert (fit.docs, fit.longer, fit.longest, fit.suggested, fit.share) == (20, 18, 140, 128, 0.95)
    assert window_fit(lengths, seq_len=140).longer == 0


def test_window_fit_known_answers() -> None:
    from mmtok.lm.windows import window_fit

    captioned = np.array([294] * 19 + [14])  # 16×16 images with a caption, and a short note
    fit = window_fit(captioned, seq_len=256)
    assert (fit.longer, fit.longest, fit.suggested, fit.share) == (19, 294, 320, 0.95)
    exact = window_fit(np.array([64] * 20), seq_len=32)  # a multiple of 64 already: not rounded further
    assert (exact.longer, exact.suggested) == (20, 64)
    with pytest.raises(ValueError, match="seq_len"):
        window_fit(captioned, seq_len=0)
