"""Checkpoint folders: round trips, atomic writes that survive a kill, clear refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, save_checkpoint
from mmtok.core.trainstate import load_train_state, save_train_state


def trained_vq(**cfg: object) -> mmtok.VectorQuantizer:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(**{"dim": 12, "codebook_size": 64, **cfg}))
    for _ in range(5):
        vq(torch.randn(1000, 12) * 2 + 1)
    return vq.eval()


@pytest.mark.parametrize("cfg", [{}, {"cosine": True}, {"codebook_dim": 4}])
def test_round_trip_gives_bit_identical_indices(tmp_path: Path, cfg: dict) -> None:
    vq = trained_vq(**cfg)
    x = torch.randn(5000, 12)
    folder = mmtok.save(vq, tmp_path / "vq", provenance={"data": "gaussian test vectors"})
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    again = mmtok.load(folder)
    assert isinstance(again, mmtok.VectorQuantizer) and not again.training
    assert again.cfg == vq.cfg
    assert torch.equal(again.encode(x), vq.encode(x))
    assert torch.equal(again.codebook, vq.codebook)
    meta = json.loads((folder / CONFIG_NAME).read_text())
    assert meta["kind"] == "vq" and meta["format_version"] == 1
    assert meta["provenance"] == {"data": "gaussian test vectors"}
    assert b"pickle" not in (folder / WEIGHTS_NAME).read_bytes()[:2000]

def test_save_without_provenance_keeps_it_only_for_unchanged_weights(tmp_path: Path) -> None:
    prov = {"model_version": "vq test 1", "data": "gaussian test vectors"}
    assert mmtok.load(mmtok.save(trained_vq(), tmp_path / "fresh")).provenance == {}  # never loaded: nothing
    first = mmtok.load(mmtok.save(trained_vq(), tmp_path / "a", provenance=prov))
    again = mmtok.load(mmtok.save(first, tmp_path / "b"))  # the round trip keeps model_version
    assert again.provenance == prov
    with torch.no_grad():
        again.embed[0] += 1  # changed after loading: the old provenance no longer describes it
    changed = mmtok.load(mmtok.save(again, tmp_path / "c")).provenance
    assert changed["derived_from"] == "vq test 1" and "model_version" not in changed
    explicit = {"model_version": "vq test 2"}
    assert mmtok.load(mmtok.save(again, tmp_path / "d", provenance=explicit)).provenance == explicit



def test_overwrite_replaces_and_cleans_up(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    save_checkpoint(folder, kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.ones(3)})
    ck = load_checkpoint(folder, kind="t")
    assert ck.config == {"v": 2} and torch.equal(ck.tensors["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporaries left behind


def test_weights_are_as_readable_as_the_config_beside_them(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
        os.umask(0o027)
        save_checkpoint(tmp_path / "ck2", kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "ck" / "model.safetensors") == mode(tmp_path / "ck" / "config.json") == 0o644
    assert mode(tmp_path / "ck2" / "model.safetensors") == mode(tmp_path / "ck2" / "config.json") == 0o640


def test_a_folder_of_other_files_or_the_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(mmtok.CheckpointError, match="holds files and no mmtok checkpoint"):
        save_checkpoint(mine, kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (mine / "config.json").write_text('{"name": "my project"}')  # a config.json, but not a checkpoint's
    with pytest.raises(mmtok.CheckpointError, match="holds files and no mmtok checkpoint"):
        save_checkpoint(mine, kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "notes.txt"]
    monkeypatch.chdir(mine)
    for here in (".", ".."):
        with pytest.raises(mmtok.CheckpointError, match="current folder"):
            save_checkpoint(Path(here), kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    (tmp_path / "empty").mkdir()
    assert save_checkpoint(tmp_path / "empty", kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)}).is_dir()


def test_replacing_a_checkpoint_keeps_the_files_it_does_not_write(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)},
                             extra_files={"README.md": "card 1"})
    (folder / "notes.txt").write_text("mine")
    (folder / "samples").mkdir()
    (folder / "samples" / "a.wav").write_bytes(b"RIFF....")
    (folder / "link").symlink_to("notes.txt")
    save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.ones(3)}, extra_files={"README.md": "card 2"})
    assert load_checkpoint(folder).config == {"v": 2}
    assert (folder / "README.md").read_text() == "card 2"  # what the new checkpoint writes is new
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "samples" / "a.wav").read_bytes() == b"RIFF...."
    assert os.readlink(folder / "link") == "notes.txt"
    save_checkpoint(folder, kind="t", config={"v": 3}, tensors={"w": torch.ones(3)})  # no card this time: the old stays
    assert (folder / "README.md").read_text() == "card 2"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or backup folder left


def test_failed_write_keeps_previous(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    save_checkpoint(folder, kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    with pytest.raises(TypeError):
        save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": "not a tensor"})  # type: ignore[dict-item]
    assert load_checkpoint(folder).config == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_kill_during_swap_falls_back_to_previous(tmp_path: Path) -> None:
    """A writer killed between its two renames leaves only the backup: loading finds it."""
    folder = tmp_path / "ck"
    save_checkpoint(folder, kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    os.rename(folder, tmp_path / ".ck.old-deadbeef")
    assert load_checkpoint(folder).config == {"v": 1}
    save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.ones(3)})
    assert load_checkpoint(folder).config == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


WRITER = textwrap.dedent(
    """
    import sys, torch
    from mmtok.core.checkpoint import save_checkpoint
    folder = sys.argv[1]
    i = 0
    while True:
        i += 1
        w = torch.full((1_000_000,), float(i))
        save_checkpoint(folder, kind="t", config={"v": i}, tensors={"w": w, "v": torch.tensor(i)})
        print(i, flush=True)
    """
)


def test_sigkill_during_save_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    for delay in (0.9, 1.3, 1.7):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one checkpoint is complete
        time.sleep(delay - 0.8)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ck = load_checkpoint(folder, kind="t")
        v = ck.config["v"]
        assert int(ck.tensors["v"]) == v
        assert torch.equal(ck.tensors["w"], torch.full((1_000_000,), float(v)))
    # the next save clears what the killed writers left
    save_checkpoint(folder, kind="t", config={"v": 0}, tensors={"w": torch.zeros(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


# --------------------------------------------------------------------------- refusals


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(mmtok.CheckpointError, match=r"no checkpoint at .*nowhere"):
        mmtok.load(tmp_path / "nowhere")


def test_unknown_shipped_name() -> None:
    with pytest.raises(mmtok.CheckpointError, match="neither a folder nor a shipped checkpoint"):
        mmtok.load("no-such-model")


@pytest.mark.parametrize("name", ["", "  "])
def test_empty_name_says_so(name: str) -> None:
    with pytest.raises(mmtok.CheckpointError, match=r"name is empty: pass a shipped name \(.*image"):
        mmtok.load(name)


def test_missing_files(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(mmtok.CheckpointError, match=rf"{folder}.* has no {WEIGHTS_NAME}"):
        mmtok.load(folder)
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(mmtok.CheckpointError, match=rf"{folder} has no {CONFIG_NAME}"):
        mmtok.load(folder)


def edit_config(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / CONFIG_NAME).read_text())
    for key, value in changes.items():
        if key.startswith("config."):
            meta["config"][key[7:]] = value
        else:
            meta[key] = value
    (folder / CONFIG_NAME).write_text(json.dumps(meta))


def test_wrong_kind(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    with pytest.raises(mmtok.CheckpointError, match=r"of kind 'vq', expected 'image'"):
        mmtok.load(folder, kind="image")
    edit_config(folder, kind="spaceship")
    with pytest.raises(mmtok.CheckpointError, match="'spaceship' is not one this mmtok can build"):
        mmtok.load(folder)


def test_newer_version_refused(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    edit_config(folder, format_version=99)
    with pytest.raises(mmtok.CheckpointError, match=r"format_version 99, newer .*upgrade mmtok"):
        mmtok.load(folder)


def test_shape_mismatch_named(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    edit_config(folder, **{"config.codebook_size": 128})
    with pytest.raises(mmtok.CheckpointError, match=r"shape mismatch embed: checkpoint \(64, 12\) vs model \(128, 12\)"):
        mmtok.load(folder)


def test_unknown_config_field_and_bad_json(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    edit_config(folder, **{"config.warp_drive": True})
    with pytest.raises(mmtok.CheckpointError, match=r"unknown field\(s\) \['warp_drive'\]"):
        mmtok.load(folder)
    (folder / CONFIG_NAME).write_text("{not json")
    with pytest.raises(mmtok.CheckpointError, match="not valid JSON"):
        mmtok.load(folder)


def test_corrupt_weights(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    (folder / WEIGHTS_NAME).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(mmtok.CheckpointError, match="unreadable"):
        mmtok.load(folder)


# --------------------------------------------------------------------------- training state


def test_train_state_resumes_the_same_trajectory(tmp_path: Path) -> None:
    def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        return m, torch.optim.AdamW(m.parameters(), lr=1e-2)

    def step(m: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        x = torch.randn(16, 4)  # drawn from the global RNG: resume must restore it
        loss = (m(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    m, opt = make()
    straight = [step(m, opt) for _ in range(10)]

    m, opt = make()
    first = [step(m, opt) for _ in range(4)]
    save_train_state(tmp_path / "run", kind="toy", config={}, model=m, optimizer=opt, step=4)
    torch.manual_seed(999)  # a new process would start elsewhere
    m2, opt2 = make()
    state = load_train_state(tmp_path / "run", model=m2, optimizer=opt2)
    assert state["step"] == 4
    rest = [step(m2, opt2) for _ in range(6)]
    assert first + rest == straight


def test_weights_only_checkpoint_cannot_resume(tmp_path: Path) -> None:
    folder = mmtok.save(trained_vq(), tmp_path / "vq")
    with pytest.raises(mmtok.CheckpointError, match="no training state"):
        load_train_state(folder, model=trained_vq())
