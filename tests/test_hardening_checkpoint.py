"""Checkpoints are checked before anything large is allocated: config sizes against the
safetensors header (read without tensor data), a sanity cap on config integers, non-finite
weights refused, and a fuzz of damaged folders (only mmtok errors may escape)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmtok
from mmtok.core.checkpoint import (
    CONFIG_NAME,
    MAX_CONFIG_INT,
    WEIGHTS_NAME,
    config_from_dict,
    read_header,
)
from mmtok.core.errors import CheckpointError, MmtokError
from mmtok.core.memory import PeakMemory
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.lm.model import ModelConfig
from mmtok.vq.quantizer import VQConfig


def tiny_image_tokenizer() -> ImageTokenizer:
    cfg = ImageTokenizerConfig(image_size=16, patch=4, enc_channels=(8,), dec_channels=(8,), latent_dim=4,
                               enc_blocks=0, dec_blocks=0, dec_level_blocks=0, vq=VQConfig(dim=4, codebook_size=8))
    return ImageTokenizer(cfg).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mmtok.save(tiny_image_tokenizer(), tmp_path_factory.mktemp("ck") / "image")


def edited(saved: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of ``saved`` with ``config.json``'s config fields changed (dotted names for nested ones)."""
    folder = tmp_path / "edited"
    folder.mkdir(exist_ok=True)
    (folder / WEIGHTS_NAME).write_bytes((saved / WEIGHTS_NAME).read_bytes())
    meta = json.loads((saved / CONFIG_NAME).read_text())
    for name, value in changes.items():
        *parents, leaf = name.split(".")
        node = meta["config"]
        for p in parents:
            node = node[p]
        node[leaf] = value
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    return folder


def test_the_tiny_checkpoint_loads(saved: Path) -> None:
    assert isinstance(mmtok.load(saved), ImageTokenizer)
    header = read_header(saved / WEIGHTS_NAME)
    assert header["vq.embed"] == ("F32", (8, 4))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vq.codebook_size", 30_000_000, r"codebook_size = 30000000 is absurdly large"),
        ("vq.codebook_size", 5_000_000, r"config field vq\.codebook_size = 5000000\?\).*vq\.embed: checkpoint \(8, 4\)"),
        ("vq.codebook_size", 0, r"codebook_size must be a whole number >= 2, got 0"),
        ("vq.codebook_size", -3, r"codebook_size = -3 is negative"),
        ("latent_dim", 2_000_000, r"latent_dim \(2000000\)"),
        ("enc_channels", [8, 4_000_000], r"4000000"),
        ("image_size", -16, r"image_size = -16 is negative"),
    ],
)
def test_absurd_config_sizes_fail_fast_and_small(saved: Path, tmp_path: Path, field: str, value: object,
                                                 message: str) -> None:
    folder = edited(saved, tmp_path, **{field: value})
    with PeakMemory("cpu") as m, pytest.raises(CheckpointError, match=message) as err:
        mmtok.load(folder)
    assert "\n" not in str(err.value)
    assert m.peak_mib < 100, m.peak_mib  # refused from the config, before anything of that size is made


def test_a_run_config_with_a_huge_vocabulary_is_refused_by_name() -> None:
    """The language model's config (read by ``sample``) gets the same sanity cap."""
    with pytest.raises(CheckpointError, match=r"vocab_size = 30000000 is absurdly large"):
        config_from_dict(ModelConfig, {"vocab_size": 30_000_000}, where="run/config.json model")
    assert config_from_dict(ModelConfig, {"vocab_size": MAX_CONFIG_INT}).vocab_size == MAX_CONFIG_INT


def test_non_finite_audio_weights_are_refused_by_name(tmp_path: Path) -> None:
    tok = mmtok.load("audio")
    name, weight = next((k, v) for k, v in tok.state_dict().items() if v.is_floating_point() and v.numel() > 4)
    with torch.no_grad():
        weight.view(-1)[2] = float("nan")
    folder = mmtok.save(tok, tmp_path / "audio")
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' holds 1 NaN/inf value"):
        mmtok.load(folder)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_name(tmp_path: Path, bad: float) -> None:
    tok = tiny_image_tokenizer()
    with torch.no_grad():
        tok.vq.embed[3, 1] = bad
    folder = mmtok.save(tok, tmp_path / "image")
    with pytest.raises(CheckpointError, match=r"tensor 'vq\.embed' holds 1 NaN/inf value"):
        mmtok.load(folder)


def test_header_that_does_not_fit_the_data_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = edited(saved, tmp_path)
    raw = (folder / WEIGHTS_NAME).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["vq.embed"]["shape"] = [8000000, 4]
    text = json.dumps(header).encode()
    (folder / WEIGHTS_NAME).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(CheckpointError, match=r"tensor 'vq\.embed'.*does not fit data_offsets"):
        mmtok.load(folder)


@pytest.mark.parametrize(("field", "value"), [("enc_blocks", 215873), ("dec_level_blocks", 10**6),
                                              ("dec_blocks", 50_000)])
def test_repeat_counts_beyond_the_weights_are_refused_before_building(saved: Path, tmp_path: Path, field: str,
                                                                      value: object) -> None:
    """A hand-edited count of repeated layers is refused from the header, without building them."""
    with PeakMemory("cpu") as m, pytest.raises(CheckpointError, match=rf"{field}.*tensors the weights hold"):
        mmtok.load(edited(saved, tmp_path, **{field: value}))
    assert m.peak_mib < 200


def test_too_many_channel_widths_are_refused_readably(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"enc_channels has 5000 widths: 4999 2× stages") as err:
        mmtok.load(edited(saved, tmp_path, enc_channels=[8] * 5000))
    assert len(str(err.value)) < 400


# --------------------------------------------------------------------------- fuzz

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                   st.text(max_size=5), st.lists(st.integers(-5, 10**7), max_size=4), st.just({}))


def _load(folder: Path) -> None:
    with PeakMemory("cpu") as m:
        try:
            mmtok.load(folder)
        except MmtokError:
            pass
    assert m.peak_mib < 500


@FUZZ
@given(field=st.sampled_from(["image_size", "patch", "enc_channels", "latent_dim", "dec_channels", "enc_blocks",
                              "vq.dim", "vq.codebook_size", "vq.codebook_dim", "size_policy", "vq.cosine"]),
       value=VALUES)
def test_fuzz_config_values(saved: Path, tmp_path: Path, field: str, value: object) -> None:
    _load(edited(saved, tmp_path, **{field: value}))


@FUZZ
@given(target=st.sampled_from([CONFIG_NAME, WEIGHTS_NAME]), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8))
def test_fuzz_damaged_files(saved: Path, tmp_path: Path, target: str, cut: float,
                            flips: list[tuple[int, int]]) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir(exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        data = bytearray((saved / name).read_bytes())
        if name == target:
            for pos, byte in flips:
                if pos < len(data):
                    data[pos] = byte
            data = data[: int(len(data) * cut)]
        (folder / name).write_bytes(bytes(data))
    _load(folder)
