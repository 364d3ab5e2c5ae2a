"""Corpus runs in several threads of one process keep to their own corpus: a run on one worker used the
module's interleaver and corpus, which the last run started had set, so two runs side by side tokenized one's
documents with the other's settings (pictures resolved against the other corpus's folder) and the first to end
left the other without any."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from mmtok.data.corpus import LocalEngine, tokenize_corpus
from mmtok.data.documents import open_source
from mmtok.data.shard_ids import id_dtype
from mmtok.data.shards import open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver

PALETTE = TokenizerSpec(image="tests.test_interleave:PaletteImages")


def corpus(folder: Path, value: int, docs: int) -> Path:
    """``docs`` documents of text and one picture, ``pic.png`` beside the corpus, all of colour ``value``."""
    folder.mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(folder / "pic.png")
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps({"segments": [f"doc {k}", {"image": "pic.png"}]}) + "\n" for k in range(docs)))
    return path


def ids_alone(path: Path) -> list[list[int]]:
    source, il = open_source(path), build_interleaver(PALETTE)
    rows = LocalEngine().results(source, PALETTE, first=1, part=(0, 1), il=il, dtype=id_dtype(il.vocab.size))
    return [np.asarray(r[1]).tolist() for r in rows]


def test_two_runs_on_one_worker_advanced_in_turn_keep_to_their_corpus(tmp_path: Path) -> None:
    a, b = corpus(tmp_path / "a", 30, 6), corpus(tmp_path / "b", 220, 3)
    alone = {"a": ids_alone(a), "b": ids_alone(b)}
    assert alone["a"][0] != alone["b"][0]  # the pictures differ, so a mix-up shows
    il = build_interleaver(PALETTE)
    dtype = id_dtype(il.vocab.size)
    runs = {name: LocalEngine().results(open_source(p), PALETTE, first=1, part=(0, 1), il=il, dtype=dtype)
            for name, p in (("a", a), ("b", b))}
    got: dict[str, list[list[int]]] = {"a": [], "b": []}
    while runs:  # one document of each in turn, as two threads would interleave them
        for name in list(runs):
            row = next(runs[name], None)
            if row is None:
                del runs[name]
            else:
                got[name].append(np.asarray(row[1]).tolist())
    assert got == alone


def test_two_corpus_runs_in_two_threads_write_what_each_writes_alone(tmp_path: Path) -> None:
    a, b = corpus(tmp_path / "a", 30, 40), corpus(tmp_path / "b", 220, 60)
    errors: list[BaseException] = []

    def run(path: Path, out: Path) -> None:
        try:
            tokenize_corpus(path, out, tokenizers=PALETTE)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p, tmp_path / f"{p.parent.name}-threads")) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for p in (a, b):
        tokenize_corpus(p, tmp_path / f"{p.parent.name}-alone", tokenizers=PALETTE)
        together, alone = open_shards(tmp_path / f"{p.parent.name}-threads"), open_shards(tmp_path / f"{p.parent.name}-alone")
        assert [np.asarray(d).tolist() for d in together.documents()] == [np.asarray(d).tolist() for d in alone.documents()]
