"""Training runs read as their commands read them: folders given as paths train and save, NaN weights are damage
to ``sample``/``export-hf``/``info`` as to ``--resume``, ``info`` describes a run from its newest checkpoint that
loads with the losses logged up to it, a changed learning rate on resume is said against the run's own schedule,
and ``--resume`` takes the run's own ``--data``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from mmtok.cli import main
from mmtok.core.errors import CheckpointError, RunRefusedError
from mmtok.info import describe
from mmtok.lm.runs import load_run, newest_loadable
from mmtok.lm.train import lr_at, train
from mmtok.lm.train_config import TrainConfig
from tests.test_hardening_train import shards as hardening_shards
from tests.test_hardening_train import small

shards = hardening_shards  # the same small corpus, made once for this module


@pytest.fixture(scope="module")
def run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step run with checkpoints at steps 2 and 4, its folders given as ``Path`` objects."""
    out = tmp_path_factory.mktemp("runs") / "run"
    cfg = small(shards, out)
    cfg = TrainConfig(**{**cfg.__dict__, "data": Path(cfg.data), "out": out})
    assert isinstance(cfg.data, str) and isinstance(cfg.out, str)
    return train(cfg, progress=False)


def test_folders_as_paths_are_saved_as_text(run: Path) -> None:
    assert [p.name for p in sorted(run.glob("ckpt-*"))] == ["ckpt-0000002", "ckpt-0000004"]
    with pytest.raises(RunRefusedError, match="data must be a folder"):
        TrainConfig(data=3)  # type: ignore[arg-type]


def _with_nan(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    weights = to / "ckpt-0000004" / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(k for k, t in tensors.items() if t.is_floating_point() and t.dim() == 2)
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(weights), metadata={"kind": "transformer"})
    return to


def test_nan_weights_are_damage_to_every_reader(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nan = _with_nan(run, tmp_path / "nan")
    with pytest.raises(CheckpointError, match=r"NaN/inf values in model\.safetensors: .* the older checkpoint "
                                              r".*ckpt-0000002 is intact: load that one \(--run .*ckpt-0000002; "
                                              r"from Python, load_run\('.*ckpt-0000002'\)\)$"):
        load_run(nan)
    assert main(["export-hf", "--run", str(nan), "--out", str(tmp_path / "hf")]) == 2
    assert "NaN/inf values" in capsys.readouterr().err and not (tmp_path / "hf").exists()
    use, damaged = newest_loadable(nan)
    assert use.name == "ckpt-0000002" and list(damaged) == ["ckpt-0000004"]
    info = describe(nan)
    assert info["step"] == 2 and info["described_from"] == "ckpt-0000002, the newest checkpoint that loads"
    assert info["damaged"][0].startswith("ckpt-0000004: checkpoint") and "NaN/inf" in info["damaged"][0]
    assert info["logged_after_it"] == "steps 3-4, in no checkpoint that loads (a --resume trains them again from step 2)"
    rows = [json.loads(line) for line in (nan / "log.jsonl").read_text().splitlines()]
    assert info["last_loss"] == next(r["loss"] for r in rows if r["step"] == 2)


def test_info_on_a_run_whose_newest_config_is_cut(run: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    config = cut / "ckpt-0000004" / "config.json"
    config.write_bytes(config.read_bytes()[:100])
    info = describe(cut)
    assert info["step"] == 2 and "config.json is not valid JSON" in info["damaged"][0]


def test_info_on_a_checkpoint_names_its_step_and_vocabulary(run: Path) -> None:
    info = describe(run / "ckpt-0000004")
    saved = json.loads((run / "ckpt-0000004" / "config.json").read_text())
    assert info["step"] == 4 and info["fingerprint"] == saved["config"]["fingerprint"]
    assert info["vocab_size"] == saved["config"]["model"]["vocab_size"]


def test_a_changed_learning_rate_is_said_against_the_run_s_own_schedule(run: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "ckpt-0000004")
    (resumed / ".lock").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["train", "--out", str(resumed), "--resume", "--steps", "3", "--lr", "0.03", "--no-progress"]) == 0
    err = capsys.readouterr().err
    data = json.loads((run / "ckpt-0000002" / "config.json").read_text())["config"]["train"]["data"]
    assert f"mmtok train: --data {data} (the run's own)" in err  # taken from its checkpoint
    logged = {r["step"]: r["lr"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}
    assert (f"mmtok train: --steps 3 (the run's: 4), --lr 0.03 (the run's: 0.003) squeezes the cosine of {resumed} to "
            f"end at step 3: the learning rate at step 3 is {lr_at(small(Path(data), resumed, steps=3, lr=0.03), 2):.3g} "
            f"(by the run's own schedule: {logged[3]:.3g})") in err  # what the run's step 3 did run at
