"""`mmtok info` of what is on disk after things went wrong: exports cut short, of a newer format or left as the
backup of a killed export; shards whose bytes changed; what a killed writer left; code files the shipped model
cannot read (and why), empty code files; symlink loops and folders of many things; and `mmtok decode` of codes
from an older version of the same model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import mmtok
from mmtok.cli import main
from mmtok.core.errors import CheckpointError, UsageError
from mmtok.data.codes import save_codes
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.export import export_shards
from mmtok.info import describe, format_info
from tests.test_info_backup import lm_checkpoint
from tests.test_run_recovery import DEAD, kill_mid_swap


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """A tiny text-only shard folder (three documents)."""
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [t]}) + "\n" for t in ("one", "two two", "three 3")))
    tokenize_corpus(corpus, tmp_path / "shards")
    return tmp_path / "shards"


def test_a_bin_export_cut_short_or_missing_its_index_is_named_damaged(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat"
    export_shards(shards, to="bin", out=out)
    whole = describe(out)
    assert whole["damaged"] is None and whole["tokens"] * 2 == (out / "tokens.bin").stat().st_size
    os.truncate(out / "tokens.bin", 6)
    d = describe(out)
    assert d["damaged"] == [f"tokens.bin holds 6 bytes (3 tokens of uint16), where meta.json counts "
                            f"{whole['tokens']:,} tokens ({whole['tokens'] * 2:,} bytes)"]
    assert d["repair"] == f"export the shards again (mmtok export SHARDS --to bin --out {out})"
    (out / "index.npy").unlink()
    assert "index.npy is missing" in describe(out)["damaged"]


def test_an_export_of_a_newer_format_is_refused_naming_both_versions(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat"
    export_shards(shards, to="bin", out=out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(CheckpointError, match=r"format version 99, newer than this mmtok reads \(1\).*upgrade mmtok"):
        describe(out)
    (out / "meta.json").write_text("")
    with pytest.raises(CheckpointError, match=r"meta.json is empty \(0 bytes\).*export the shards again"):
        describe(out)


def test_an_export_killed_between_its_renames_names_its_backup_and_how_to_put_it_back(
        shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat"
    export_shards(shards, to="bin", out=out)
    want = describe(out)
    backup = tmp_path / ".flat.old-deadbeef"
    os.rename(out, backup)  # what a kill between the two renames leaves
    with pytest.raises(CheckpointError) as e:
        describe(out)
    assert str(e.value).startswith(f"{out} is not there, but {backup} is: the previous 'mmtok export --to bin'")
    assert "run that export again (it puts the backup back first" in str(e.value)
    assert f"mv {backup} {out}" in str(e.value) and backup.is_dir() and not out.exists()  # nothing written
    export_shards(shards, to="bin", out=out)  # what the message says to do
    assert describe(out) == want and not backup.exists()


def test_shards_whose_bytes_changed_are_named_damaged(shards: Path) -> None:
    assert describe(shards)["checked"].startswith("each shard's sha256") and "damaged" not in describe(shards)
    data = shards / "shard-00000.bin"
    raw = bytearray(data.read_bytes())
    raw[3] ^= 0x01
    data.write_bytes(bytes(raw))
    d = describe(shards)
    assert d["damaged"] == [f"{data}: its bytes do not match the sha256 its manifest lists (changed or damaged "
                            "since written); tokenize the corpus again (mmtok tokenize ... --restart)"]


def test_what_a_killed_writer_left_in_a_shard_or_run_folder_is_listed(shards: Path, tmp_path: Path) -> None:
    (shards / f".shard-00001.bin.tmp-{DEAD}").write_bytes(b"half")
    (left,) = describe(shards)["leftovers"]
    assert left.startswith(f".shard-00001.bin.tmp-{DEAD}: a write that process {DEAD} did not finish (it is gone)")
    run = tmp_path / "run"
    lm_checkpoint(run / "ckpt-0000002", 2)
    assert "leftovers" not in {k for k, v in describe(run).items() if v is not None}
    (run / f".ckpt-0000004.tmp-{DEAD}-0badf00d").mkdir()
    assert describe(run)["leftovers"][0].startswith(f".ckpt-0000004.tmp-{DEAD}-0badf00d: a write that process")


def test_a_run_read_from_its_backup_says_how_to_put_it_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    newest = lm_checkpoint(run / "ckpt-0000004", 4)
    assert describe(run)["recover"] is None
    backup = kill_mid_swap(newest)
    d = describe(run)
    assert d["recover"] == (f"mmtok train --resume --out {run} puts it back as ckpt-0000004 before it trains "
                            f"(or: mv {backup} {newest})")
    assert d["leftovers"] == [f".ckpt-0000004.tmp-{DEAD}-0badf00d: a write that process {DEAD} did not finish (it "
                              "is gone); nothing reads it, the next run in this folder removes it, and it may be "
                              "deleted"]


def test_a_code_file_the_shipped_model_cannot_read_says_why(tmp_path: Path) -> None:
    image = mmtok.load("image")
    meta = {"kind": "image", "model": "image", "model_version": "image v0 (2020-01-01)", "fingerprint": "0" * 16,
            "codebook_size": image.codebook_size, "source": "photo.png"}
    other = save_codes(tmp_path / "other.png.npz", np.zeros((2, 2), np.int64), meta)
    d = describe(other)
    assert d["shipped_model_reads_it"] is False
    assert d["why_not"].startswith(f"its codes were made by image v0 (2020-01-01) (fingerprint {'0' * 16}), the "
                                   f"shipped image model is ")
    assert image.fingerprint in d["why_not"] and "decode them with --image naming the model" in d["why_not"]
    codes = np.array([[0, image.codebook_size + 5]])
    bad = save_codes(tmp_path / "bad.png.npz", codes, meta | {"fingerprint": image.fingerprint})
    assert describe(bad)["why_not"] == (f"its codes hold {image.codebook_size + 5}, outside the codebook of "
                                        f"{image.codebook_size:,} codes (0 to {image.codebook_size - 1:,}): the "
                                        "file is damaged; encode the original again")
    assert "why_not" not in describe(save_codes(tmp_path / "ok.png.npz", codes[:, :1], meta | {
        "fingerprint": image.fingerprint}))


def test_decode_of_codes_from_an_older_version_of_the_same_model_names_both_versions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = mmtok.load("image")
    meta = {"kind": "image", "model": "image", "model_version": "image v0 (2020-01-01)", "fingerprint": "0" * 16,
            "codebook_size": image.codebook_size, "source": "photo.png"}
    codes = save_codes(tmp_path / "photo.png.npz", np.zeros((2, 2), np.int64), meta)
    assert main(["decode", str(codes), "--out", str(tmp_path / "back")]) == 2
    err = capsys.readouterr().err
    now = image.provenance["model_version"]
    assert f"changed since these codes were made (image v0 (2020-01-01) then, {now} now; fingerprint" in err


def test_an_empty_code_file_is_named_empty_and_encode_replaces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(photo)
    empty = tmp_path / "codes" / "photo.png.npz"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match=r"empty \(0 bytes\), not a code file.*encode the original again"):
        describe(empty)
    assert main(["decode", str(empty), "--out", str(tmp_path / "back")]) == 2
    assert "empty (0 bytes)" in capsys.readouterr().err
    assert main(["encode", str(photo), "--out", str(tmp_path / "codes")]) == 0  # nothing in it was lost
    assert describe(empty)["shape"] == [16, 16]


def test_a_symlink_loop_is_named_as_one(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(CheckpointError, match=r"is a symbolic link that leads back to itself .*point it at"):
        describe(a)


def test_a_folder_of_code_files_names_what_info_describes_in_it(tmp_path: Path) -> None:
    for name in ("a.png.npz", "b.wav.npz"):
        save_codes(tmp_path / "codes" / name, np.zeros((2, 2), np.int64), {"kind": "image"})
    (tmp_path / "codes" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError) as e:
        describe(tmp_path / "codes")
    assert str(e.value).endswith("nothing to describe; it holds what 'mmtok info' describes, one path at a time: "
                                 f"a.png.npz, b.wav.npz (e.g. mmtok info {tmp_path / 'codes' / 'a.png.npz'})")


def test_json_of_a_damaged_export_is_one_object_alone_on_stdout(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flat"
    export_shards(shards, to="bin", out=out)
    os.truncate(out / "tokens.bin", 4)
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["damaged"] and got["repair"]
    assert "damaged" in format_info(got) and "repair" in format_info(got)


def _saved_by_a_newer_mmtok(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"format_version": 99}))


def test_a_runs_checkpoint_from_a_newer_mmtok_is_not_called_damaged(tmp_path: Path) -> None:
    run = tmp_path / "run"
    lm_checkpoint(run / "ckpt-0000002", 2)
    _saved_by_a_newer_mmtok(lm_checkpoint(run / "ckpt-0000004", 4))
    d = describe(run)
    assert d["step"] == 2 and d["damaged"] is None
    assert d["newer"] == ["ckpt-0000004: saved by a newer mmtok (format_version 99; this one reads 1): upgrade "
                          "mmtok to read it; a --resume by this one is refused, and nothing in the run is moved"]


def test_a_tokenizer_runs_state_from_a_newer_mmtok_says_to_upgrade_to_resume(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from mmtok.core.trainstate import OPTIMIZER_NAME

    run = tmp_path / "run"
    lm_checkpoint(run / "train-state", 6)
    save_file({"rng.torch": torch.get_rng_state()}, str(run / "train-state" / OPTIMIZER_NAME))
    assert describe(run)["step"] == 6
    _saved_by_a_newer_mmtok(run / "train-state")
    d = describe(run)
    assert d["step"] is None and d["kind"] == "transformer"
    assert d["resume"] == ("refused (exit 2): its train-state/ was saved by a newer mmtok (format_version 99; this "
                           "one reads 1): upgrade mmtok to resume it")
