"""A shipped preset planned as a Preset object, the device a trainer ran on in its record, and an export
killed between its two renames."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import soundfile as sf
import torch

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.context import planner
from mmtok.context.shipped import plan, shipped_preset
from mmtok.core.checkpoint import save_checkpoint
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.export import export_shards
from mmtok.image.config import ImageTokenizerConfig
from tests.test_audio import speechlike

pytestmark = pytest.mark.usefixtures("one_thread")

# --------------------------------------------------------------------------- a shipped preset as a Preset object


def test_a_shipped_preset_counts_an_8k_frame_at_the_native_working_size_wherever_it_is_planned(
        tmp_path: Path) -> None:
    image = save_checkpoint(tmp_path / "image", kind="image", tensors={}, config=ImageTokenizerConfig(size_policy="native"))
    by_name = plan(1, preset="mmtok", image=image, audio=None, resolution=(4320, 7680))
    preset = shipped_preset(image, None)
    by_object = plan(1, preset=preset, image=image, audio=None, resolution=(4320, 7680))
    assert by_object == by_name and by_name.resolution == (2304, 4096) and by_name.grid == (144, 256)
    assert preset.size_policy == "native"
    arithmetic = planner.plan(1, preset=preset, resolution=(4320, 7680))  # the arithmetic planner alone
    assert arithmetic.grid == (144, 256) and "7680x4320 are counted at 4096x2304" in arithmetic.note
    assert planner.plan(1, preset=preset, resolution=(360, 640)).grid == (23, 40)  # within MAX_SIDE: as it is


def test_the_preset_keeps_its_fields_and_the_published_presets_their_numbers() -> None:
    names = [f.name for f in dataclasses.fields(planner.Preset)]
    assert names[:15] == ["name", "source", "fps", "resolution", "downsample", "temporal", "causal_first_frame",
                          "fixed_tokens_per_frame", "fixed_size", "tokens_per_row", "tokens_per_frame_overhead",
                          "tokens_per_video", "audio_tokens_per_second", "tokens_per_audio", "note"]
    assert all(p.size_policy is None for p in planner.PRESETS.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        planner.PRESETS["lwm"].size_policy = "native"  # type: ignore[misc]
    assert planner.plan(1, preset="lwm", resolution=(4320, 7680)).grid == (270, 480)  # no size policy: no reduction


# --------------------------------------------------------------------------- the device a run trained on


def test_device_record_names_the_gpu_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.core.device import device_record

    assert device_record(torch.device("cpu")) == {"device": "cpu"}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU number {i}")
    assert device_record(torch.device("cuda")) == {"device": "cuda:1", "device_name": "GPU number 1"}
    assert device_record(torch.device("cuda", 0)) == {"device": "cuda:0", "device_name": "GPU number 0"}


def test_the_image_trainer_records_its_device(tmp_path: Path) -> None:
    from mmtok.image.train import main
    from tests.test_image_train import _train_args

    assert main([*_train_args(tmp_path, "--device", "cpu"), "--steps", "1"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["device"] == "cpu" and "device_name" not in summary


def test_the_audio_trainer_records_its_device(tmp_path: Path) -> None:
    from mmtok.audio.train import main

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"clip-{i}.wav", speechlike(1.5, seed=i), SAMPLE_RATE)
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--crop-tokens", "8", "--batch-size", "2",
                 "--threads", "1", "--no-progress", "--steps", "1", "--encoder", "conv", "--codebook-size", "8",
                 "--encoder-channels", "8", "--decoder-channels", "8", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["device"] == "cpu"


def test_the_vocoder_trainer_records_its_device(tmp_path: Path) -> None:
    from mmtok.audio import vocoder_train
    from mmtok.audio.vocoder_data import build_cache
    from tests.test_vocoder_cli import run_args, write_corpus

    build_cache(write_corpus(tmp_path / "corpus", ("train", "validation")), tmp_path / "cache", progress=False)
    out = tmp_path / "run"
    assert vocoder_train.main([*run_args(tmp_path / "cache", out, "--steps", "1"), "--device", "cpu"]) == 0
    for record in (out / "model" / "config.json", out / "train-state" / "config.json"):
        assert json.loads(record.read_text())["provenance"]["device"] == "cpu"


def test_the_lm_trainer_records_its_device(tmp_path: Path) -> None:
    from mmtok.lm.runs import latest_checkpoint
    from mmtok.lm.train import train
    from tests.test_data import SPEC, make_corpus
    from tests.test_train import small

    shards = tmp_path / "shards"
    tokenize_corpus(make_corpus(tmp_path, n_docs=8), shards, tokenizers=SPEC, shard_tokens=400)
    run = train(small(shards, tmp_path / "run", steps=1, save_every=1, device="cpu"), progress=False)
    ck = latest_checkpoint(run)
    assert ck is not None and json.loads((ck / "config.json").read_text())["provenance"]["device"] == "cpu"


# --------------------------------------------------------------------------- an export killed mid-swap


class Killed(BaseException):
    """The process gone: nothing after the first rename of the export's folder happens."""


def _renames_of(monkeypatch: pytest.MonkeyPatch, target: Path, fail: dict[int, BaseException]) -> None:
    """``os.rename`` and ``os.replace`` as they are, but the N-th rename to or from ``target`` raises ``fail[N]``
    (from N on, for a :class:`Killed`: a process killed there renames nothing more)."""
    count = [0]
    real = {"rename": os.rename, "replace": os.replace}

    def wrapped(name: str):
        def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            if target in (Path(os.fspath(src)), Path(os.fspath(dst))):
                count[0] += 1
                dead = [e for k, e in fail.items() if k <= count[0] and isinstance(e, Killed)]
                if count[0] in fail or dead:
                    raise fail.get(count[0]) or dead[0]
            real[name](src, dst)
        return rename

    monkeypatch.setattr(os, "rename", wrapped("rename"))
    monkeypatch.setattr(os, "replace", wrapped("replace"))


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n{"segments": ["there"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards")
    return tmp_path / "shards"


def test_an_export_killed_between_its_renames_is_put_back_never_lost(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flat = tmp_path / "flat"
    export_shards(shards, to="bin", out=flat)
    before = (flat / "tokens.bin").read_bytes()
    with monkeypatch.context() as m:
        _renames_of(m, flat.resolve(), {2: Killed()})
        with pytest.raises(Killed):
            export_shards(shards, to="bin", out=flat)
    assert not flat.exists()  # killed there: the earlier export lies aside under a hidden name

    def broken(*args: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as m:  # the next export fails while writing: the earlier one is back all the same
        m.setattr("mmtok.data.export._write_bin", broken)
        with pytest.raises(OSError, match="disk full"):
            export_shards(shards, to="bin", out=flat)
    assert (flat / "tokens.bin").read_bytes() == before
    assert export_shards(shards, to="bin", out=flat)["tokens"] == 11  # and the one after replaces it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".flat")) == []


def test_an_export_failing_between_its_renames_leaves_the_earlier_one(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flat = tmp_path / "flat"
    export_shards(shards, to="bin", out=flat)
    before = sorted(p.name for p in flat.iterdir())
    with monkeypatch.context() as m:  # the new export's rename into place fails: the earlier one is renamed back
        _renames_of(m, flat.resolve(), {2: OSError("no room in the folder")})
        with pytest.raises(OSError, match="no room"):
            export_shards(shards, to="bin", out=flat)
    assert sorted(p.name for p in flat.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".flat")] == []



def test_a_range_up_to_2_63_is_written_in_full_in_a_refusal() -> None:
    from mmtok.core.errors import RunRefusedError
    from mmtok.lm.train import TrainConfig, check_config

    with pytest.raises(RunRefusedError) as err:  # a recorded seed past int64 (a hand-edited run)
        check_config(TrainConfig(seed=2**63), recorded={"seed": 2**63})
    assert "in [0, 9223372036854775807]" in str(err.value) and "e+18" not in str(err.value)
