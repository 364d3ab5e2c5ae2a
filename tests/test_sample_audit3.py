"""Sampling's arguments: each one that cannot work is one error naming it, before any model work."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mmtok.core.errors import UsageError
from mmtok.lm import sample
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import generate, sample_run
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary


@pytest.fixture(scope="module")
def setup() -> tuple[Transformer, Interleaver]:
    vocab = Vocabulary(256, ranges={"image": 16, "audio": 8})
    torch.manual_seed(0)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=vocab.size), max_seq_len=64)
    return Transformer(cfg).eval(), Interleaver(vocab)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"force": "image", "image_grid": (2.5, 2)}, "image_grid"),  # never closed the image it opened
    ({"force": "image", "image_grid": "2x2"}, "image_grid"),
    ({"force": "image", "image_grid": (0, 2)}, "image_grid"),
    ({"force": "audio", "audio_tokens": 4}, "audio_tokens"),
    ({"force": "audio", "audio_tokens": (5, 3)}, "audio_tokens"),
    ({"force": "audio", "audio_tokens": (0, 3)}, "audio_tokens"),
    ({"temperature": "1"}, "temperature"),
    ({"top_k": 2.5}, "top_k"),
    ({"top_p": "0.5"}, "top_p"),
    ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ({"num_samples": 1.5}, "num_samples"),
    ({"seed": 2**70}, "seed"),
    ({"seed": "1"}, "seed"),
])
def test_generate_names_the_argument_that_cannot_work(setup: tuple[Transformer, Interleaver],
                                                      kwargs: dict[str, object], named: str) -> None:
    model, il = setup
    with pytest.raises((TypeError, ValueError), match=rf"^{named} must be") as e:
        generate(model, il, "a", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


def test_a_whole_image_grid_given_as_numpy_ints_still_decodes(setup: tuple[Transformer, Interleaver]) -> None:
    import numpy as np

    model, il = setup
    (ids,) = generate(model, il, "a", force="image", image_grid=(np.int64(2), np.int64(3)), seed=0)
    assert il.decode(ids, partial=True)[-1]["image_codes"].shape == (2, 3)


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_an_empty_output_path_is_refused_not_ignored(tmp_path: Path, kind: str) -> None:
    """``--image-out ""`` (an unset shell variable) sampled text and wrote nothing, exit 0."""
    with pytest.raises(UsageError, match=rf"--{kind}-out \({kind}_out=\) is empty"):
        sample_run(tmp_path / "no-run", "a", **{f"{kind}_out": ""})  # type: ignore[arg-type]


def test_the_command_refuses_an_empty_output_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--image-out .* is empty"):
        sample.main(["--run", str(tmp_path / "no-run"), "--image-out", ""])


@pytest.mark.parametrize(("kwargs", "named"), [({"max_new_tokens": "5"}, "max_new_tokens"),
                                               ({"image_grid": (2.5, 2)}, "image_grid"), ({"seed": -1}, "seed")])
def test_sample_run_checks_its_settings_before_the_run_is_read(tmp_path: Path, kwargs: dict[str, object],
                                                               named: str) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"^{named} must be"):
        sample_run(tmp_path / "no-run", "a", **kwargs)  # type: ignore[arg-type]
