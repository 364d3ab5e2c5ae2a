"""Checkpoint folders while they are replaced: an interrupted or killed save, a load racing a save,
symlinked folders, folders that cannot be read or written, and long folder names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.core import checkpoint as checkpoint_module
from mmtok.core import module_io
from mmtok.core.checkpoint import CONFIG_NAME, load_checkpoint, save_checkpoint
from mmtok.core.checkpoint_folder import (
    OLD_TAG,
    SETTLE_TRIES,
    pid_alive,
    restore_swaps,
    sibling_prefix,
)
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.errors import CheckpointError, MmtokError
from mmtok.pretrained import load_config


def small_vq(seed: int) -> mmtok.VectorQuantizer:
    torch.manual_seed(seed)
    return mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8))


def hidden(folder: Path) -> list[str]:
    """The temporary and backup folders beside ``folder``."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- an interrupted or killed save


def test_an_exception_between_the_two_renames_puts_the_folder_back(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.zeros(3)})
    (folder / "notes.txt").write_text("mine")
    real, calls = os.rename, []

    def interrupted(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(dst)
        if len(calls) == 2:  # folder -> backup done, tmp -> folder not yet
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.ones(3)})
    monkeypatch.setattr(os, "rename", real)
    assert load_checkpoint(folder).config == {"v": 1} and (folder / "notes.txt").read_text() == "mine"
    assert hidden(folder) == []


def test_a_save_killed_between_its_renames_is_found_by_every_loader_and_the_next_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = mmtok.save(small_vq(0), tmp_path / "ck", provenance={"v": 1})
    (folder / "notes.txt").write_text("mine")
    os.rename(folder, tmp_path / ".ck.old-deadbeef")  # what a writer killed after its first rename leaves
    monkeypatch.chdir(tmp_path)
    for where in (str(folder), folder, "ck"):
        assert resolve_checkpoint(where) in (folder, Path("ck"))
        assert mmtok.load(where).provenance == {"v": 1}
    assert load_config(folder).codebook_size == 8
    newer = small_vq(1)
    mmtok.save(newer, folder, provenance={"v": 2})
    assert (folder / "notes.txt").read_text() == "mine"  # the backup's other files are kept, as a folder's are
    assert torch.equal(mmtok.load(folder).embed, newer.embed) and hidden(folder) == []


# --------------------------------------------------------------------------- a load racing a save


def test_a_load_racing_a_save_gets_one_saves_config_and_weights(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.full((4,), 1.0)})
    real, saved = checkpoint_module.load_tensors, []

    def save_meanwhile(path: Path) -> dict[str, torch.Tensor]:
        if not saved:  # another process saves while this load has read config.json, not yet the weights
            saved.append(save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.full((4,), 2.0)}))
        return real(path)

    monkeypatch.setattr(checkpoint_module, "load_tensors", save_meanwhile)
    ck = load_checkpoint(folder)
    assert ck.config["v"] == int(ck.tensors["w"][0]) == 2


def test_mmtok_load_racing_a_save_gets_one_saves_config_and_weights(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = mmtok.save(small_vq(0), tmp_path / "vq", provenance={"v": 1})
    newer = small_vq(1)
    real, saved = module_io.load_tensors, []

    def save_meanwhile(path: Path) -> dict[str, torch.Tensor]:
        if not saved:
            saved.append(mmtok.save(newer, folder, provenance={"v": 2}))
        return real(path)

    monkeypatch.setattr(module_io, "load_tensors", save_meanwhile)
    back = mmtok.load(folder)
    assert back.provenance == {"v": 2} and torch.equal(back.embed, newer.embed)


def test_a_backup_removed_while_it_is_read_is_read_again_from_the_new_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.full((4,), 1.0)})
    os.rename(folder, tmp_path / ".ck.old-deadbeef")  # a killed writer's backup: what the load starts on
    real, saved = checkpoint_module.load_tensors, []

    def save_meanwhile(path: Path) -> dict[str, torch.Tensor]:
        if not saved:  # the next save completes and removes the backup being read
            saved.append(save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.full((4,), 2.0)}))
        return real(path)

    monkeypatch.setattr(checkpoint_module, "load_tensors", save_meanwhile)
    ck = load_checkpoint(folder)
    assert ck.path == folder and ck.config["v"] == int(ck.tensors["w"][0]) == 2


def test_a_folder_that_never_settles_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 0}, tensors={"w": torch.zeros(2)})
    real, count = checkpoint_module.load_tensors, [0]

    def always_saving(path: Path) -> dict[str, torch.Tensor]:
        count[0] += 1
        save_checkpoint(folder, kind="t", config={"v": count[0]}, tensors={"w": torch.zeros(2)})
        return real(path)

    monkeypatch.setattr(checkpoint_module, "load_tensors", always_saving)
    with pytest.raises(CheckpointError, match=rf"{folder} kept changing while it was read") as err:
        load_checkpoint(folder)
    assert "\n" not in str(err.value) and count[0] == SETTLE_TRIES


# --------------------------------------------------------------------------- symlinks


def test_saving_to_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt-100", kind="t", config={"v": 1}, tensors={"w": torch.zeros(2)})
    link = tmp_path / "latest"
    link.symlink_to("ckpt-100")
    assert save_checkpoint(link, kind="t", config={"v": 2}, tensors={"w": torch.ones(2)}) == link
    assert link.is_symlink() and os.readlink(link) == "ckpt-100"
    assert load_checkpoint(tmp_path / "ckpt-100").config == {"v": 2} == load_checkpoint(link).config
    (tmp_path / "next").symlink_to("ckpt-200")  # a link to a folder not made yet: the save makes it
    save_checkpoint(tmp_path / "next", kind="t", config={"v": 3}, tensors={"w": torch.ones(2)})
    assert load_checkpoint(tmp_path / "ckpt-200").config == {"v": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-100", "ckpt-200", "latest", "next"]


# --------------------------------------------------------------------------- permissions and long names


def denied(path: object) -> PermissionError:
    return PermissionError(13, "Permission denied", str(path))


def test_an_unreadable_config_is_a_checkpoint_error_naming_the_folder(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = mmtok.save(small_vq(0), tmp_path / "vq")
    read_text = Path.read_text

    def unreadable(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == CONFIG_NAME:
            raise denied(self)
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(CheckpointError, match=rf"checkpoint {folder}: cannot read {CONFIG_NAME} \(Permission denied\)"):
        mmtok.load(folder)


def test_unreadable_weights_are_not_called_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = mmtok.save(small_vq(0), tmp_path / "vq")

    def unreadable(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("model.safetensors"):
            raise denied(path)
        return open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(checkpoint_module, "open", unreadable, raising=False)
    with pytest.raises(CheckpointError, match=rf"{folder}/model.safetensors cannot be read: Permission denied$"):
        mmtok.load(folder)


def test_a_folder_that_cannot_be_written_is_named_not_its_temporary(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro" / "ck"
    mkdir = Path.mkdir

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        if self.name.startswith(".ck.tmp-"):  # as in a folder the user may not write
            raise denied(self)
        mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(CheckpointError, match=rf"cannot write checkpoint to {folder}: Permission denied") as err:
        mmtok.save(small_vq(0), folder)
    assert isinstance(err.value, MmtokError) and ".tmp-" not in str(err.value)


def test_a_long_folder_name_that_fits_can_be_saved_over(tmp_path: Path) -> None:
    folder = tmp_path / ("é" * 120)  # 240 bytes: a legal name, too long for ".NAME.tmp-PID-XXXXXXXX"
    save_checkpoint(folder, kind="t", config={"v": 1}, tensors={"w": torch.zeros(2)})
    save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.zeros(2)})
    assert load_checkpoint(folder).config == {"v": 2} and os.listdir(tmp_path) == [folder.name]
    too_long = tmp_path / ("a" * 256)
    with pytest.raises(CheckpointError, match="File name too long"):
        save_checkpoint(too_long, kind="t", config={"v": 1}, tensors={"w": torch.zeros(2)})


def test_a_long_named_folders_backup_is_never_put_back_under_its_shortened_name(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / ("export-" + "a" * 240), kind="t", config={"v": 1}, tensors={})
    backup = tmp_path / f"{sibling_prefix(folder)}{OLD_TAG}0123abcd"
    os.rename(folder, backup)  # killed between its two renames: only the backup is left
    assert restore_swaps(tmp_path) == [] and os.listdir(tmp_path) == [backup.name]  # its full name is not known
    assert load_checkpoint(folder).config == {"v": 1}  # a reader that knows it finds the backup
    assert restore_swaps(tmp_path, names=[folder.name]) == [f"{folder.name} put back from {backup.name}"]
    os.mkdir(backup)  # the folder whole, and a copy of it left behind: an obsolete backup, removed
    (backup / CONFIG_NAME).write_text("{}")
    assert restore_swaps(tmp_path) == [f"removed {backup.name} (older copies of {folder.name})"]
    assert os.listdir(tmp_path) == [folder.name] and load_checkpoint(folder).config == {"v": 1}


def test_a_temporary_name_with_more_digits_than_a_pid_is_no_ones_and_kept(tmp_path: Path) -> None:
    """A file of the user's named like a temporary one, with a time stamp: not a process id (os.kill would
    overflow on it); and a process id that cannot be asked about counts as running."""
    theirs = [".ck.tmp-20240101123045", ".ck.tmp-20240101123045-0badf00d", ".notes.txt.tmp-20240101123045"]
    for name in theirs:
        (tmp_path / name).mkdir()
    save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={})
    save_checkpoint(tmp_path / "ck", kind="t", config={"v": 2}, tensors={})
    assert restore_swaps(tmp_path) == [] and sorted(os.listdir(tmp_path)) == sorted(["ck", *theirs])
    assert pid_alive(10**30) and pid_alive(0) and pid_alive(os.getpid())


def test_a_temporary_folder_vanishing_while_listed_does_not_stop_a_save(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="t", config={"v": 1}, tensors={"w": torch.zeros(2)})
    (tmp_path / ".ck.tmp-1-abcdef12").mkdir()  # another writer's, removed by it while this save lists them
    stat = Path.stat

    def vanishing(self: Path, *args: object, **kwargs: object) -> os.stat_result:
        if self.name == ".ck.tmp-1-abcdef12":
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return stat(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "stat", vanishing)
    save_checkpoint(folder, kind="t", config={"v": 2}, tensors={"w": torch.zeros(2)})
    assert load_checkpoint(folder).config == {"v": 2}
