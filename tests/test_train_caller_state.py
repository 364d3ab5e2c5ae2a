"""mmtok.lm.train.train() called from Python leaves the caller's torch generators as it found them: the run
seeds them with its own seed, and a notebook that trained a model then drew different numbers than it would
have without the call."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mmtok.data.corpus import tokenize_corpus
from mmtok.lm.train import train
from tests.test_data import SPEC, make_corpus
from tests.test_train import small


def test_train_gives_the_callers_random_state_back(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    tokenize_corpus(make_corpus(tmp_path, n_docs=20), shards, tokenizers=SPEC, shard_tokens=400)
    torch.manual_seed(1)
    expected = torch.randn(3)
    torch.manual_seed(1)
    run = train(small(shards, tmp_path / "run", steps=2, save_every=2, seed=7), progress=False)
    assert torch.equal(torch.randn(3), expected)
    # the run itself stays as seeded as before: from another caller state, the same seed trains the same losses
    torch.manual_seed(123)
    again = train(small(shards, tmp_path / "run2", steps=2, save_every=2, seed=7), progress=False)
    assert losses(again) == losses(run) and len(losses(run)) == 2


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
