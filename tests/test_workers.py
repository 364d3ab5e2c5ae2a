"""The local engine's worker pool: media is read and decoded in the workers, each with one intra-op thread,
results come back in order through many windows of chunks, and the shards are the same for any --workers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mmtok.data import corpus
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec
from tests.test_interleave import PaletteImages

LOG_ENV = "MMTOK_TEST_ENCODE_LOG"


class LoggingImages(PaletteImages):
    """PaletteImages that records which process encoded each image, and with how many threads."""

    fingerprint = "palette-v1-logged"

    def encode(self, img: Any) -> torch.Tensor:
        with open(os.environ[LOG_ENV], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads(),
                                "path": isinstance(img, str)}) + "\n")
        return super().encode(img)


def _corpus(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    lines = []
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 16 * (1 + k % 3), 3), dtype=np.uint8)).save(folder / f"img/{k}.png")
        lines.append(json.dumps({"segments": [f"doc {k}", {"image": f"img/{k}.png"}]}))
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "docs.jsonl"


def test_media_is_decoded_in_the_workers_with_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "encode.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    docs = _corpus(tmp_path / "c", 12)
    spec = TokenizerSpec(image="tests.test_workers:LoggingImages")
    tokenize_corpus(docs, tmp_path / "out", tokenizers=spec, workers=2)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 12 and all(c["path"] for c in calls)  # the parent passed a path, not pixels
    assert os.getpid() not in {c["pid"] for c in calls}
    assert {c["threads"] for c in calls} == {1}


def test_order_and_bytes_hold_over_many_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More chunks than the window holds, text-only documents of uneven cost: the same shards for 1, 2, 3 workers."""
    monkeypatch.setattr(corpus, "CHUNK_LINES", 2)
    monkeypatch.setattr(corpus, "CHUNKS_PER_WORKER", 2)
    rng = np.random.default_rng(1)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"segments": ["x" * int(rng.integers(1, 400))]}) + "\n" for _ in range(200)))
    outs = []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        tokenize_corpus(docs, out, workers=workers, shard_tokens=2000)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != ".lock"})
    assert len(outs[0]) > 10 and outs[0] == outs[1] == outs[2]


def test_the_parent_keeps_its_threads(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"segments": ["a"]}\n')
    tokenize_corpus(docs, tmp_path / "one", workers=1)
    tokenize_corpus(docs, tmp_path / "two", workers=2)
    assert torch.get_num_threads() == before
