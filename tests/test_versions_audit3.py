"""Files of another mmtok version, or damaged: a run's checkpoints, a shard folder's manifest, indexes and .bin files,
and code files. A newer format is refused, saying to upgrade, with nothing moved, deleted or overwritten; damage is
named with the file and what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmtok.cli import main
from mmtok.core.checkpoint import read_config
from mmtok.core.errors import CheckpointError, CorpusError, RunRefusedError, UsageError
from mmtok.core.format_version import NewerCheckpointError
from mmtok.data.codes import CODES_VERSION, load_codes, save_codes
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shards import open_shards
from mmtok.lm.train import train
from mmtok.lm.train_config import TrainConfig

NEWER = r"written by a newer mmtok \(format 99, this reads 1\): upgrade mmtok"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text-only shard folder (six documents)."""
    folder = tmp_path_factory.mktemp("versions")
    corpus = folder / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [{"text": f"document {i} " * (i + 3)}]}) + "\n"
                              for i in range(6)))
    tokenize_corpus(corpus, folder / "shards")
    return folder / "shards"


@pytest.fixture(scope="module")
def run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 4 steps with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("versions-run") / "run"
    return train(_small(shards, out), progress=False)


def _small(shards: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), seq_len=96, batch_size=2, steps=4, warmup=1, save_every=2,
                keep_last=2, threads=1)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / ".verified.json").unlink(missing_ok=True)
    return dst


# --- a run's checkpoints ------------------------------------------------------------------------------------------

def test_resume_refuses_a_newest_checkpoint_from_a_newer_mmtok_and_moves_nothing(run: Path, tmp_path: Path,
                                                                              shards: Path) -> None:
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    _edit_json(mine / "ckpt-0000004" / "config.json", format_version=99)
    before = _snapshot(mine)
    with pytest.raises(RunRefusedError, match=rf"ckpt-0000004 .*{NEWER}.*nothing in .* was moved"):
        train(_small(shards, mine, steps=6), resume=True, progress=False)
    assert _snapshot(mine) == before  # no damaged-ckpt-*, no new checkpoint, the log as it was
    with pytest.raises(NewerCheckpointError, match=NEWER):
        read_config(mine / "ckpt-0000004")


def test_resume_still_passes_over_a_damaged_newest_checkpoint(run: Path, tmp_path: Path, shards: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    _edit_json(mine / "ckpt-0000004" / "config.json", format_version=0)
    train(_small(shards, mine), resume=True, progress=False)
    err = capsys.readouterr().err
    assert "format_version 0 is older than any mmtok wrote" in err and "resuming from" in err
    assert (mine / "damaged-ckpt-0000004").is_dir() and (mine / "ckpt-0000004").is_dir()


def test_an_old_or_missing_checkpoint_version_says_what_to_do(run: Path, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    shutil.copytree(run / "ckpt-0000004", ck)
    _edit_json(ck / "config.json", format_version=None)
    with pytest.raises(CheckpointError, match=r"format_version is missing.*use another checkpoint"):
        read_config(ck)


# --- shard folders --------------------------------------------------------------------------------------------

def test_a_manifest_from_a_newer_mmtok_is_refused_without_advising_restart(shards: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    mine = _copy(shards, tmp_path / "shards")
    _edit_json(mine / "manifest.json", format_version=99)
    with pytest.raises(CorpusError, match=rf"manifest\.json was {NEWER}") as e:
        open_shards(mine)
    assert "--restart there" not in str(e.value) and "do not --restart" in str(e.value)
    before = _snapshot(mine)
    assert main(["train", "--data", str(mine), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "written by a newer mmtok (format 99, this reads 1)" in capsys.readouterr().err
    assert _snapshot(mine) == before


def test_tokenize_again_into_a_newer_mmtoks_finished_folder_refuses_it_and_writes_nothing(shards: Path,
                                                                                        tmp_path: Path) -> None:
    mine = _copy(shards, tmp_path / "shards")
    _edit_json(mine / "manifest.json", format_version=99)
    before = _snapshot(mine)
    with pytest.raises(CorpusError, match=NEWER):  # not "done" (it would say so and exit 0), not resumed
        tokenize_corpus(shards.parent / "docs.jsonl", mine)
    assert _snapshot(mine) == before


def test_a_shard_index_from_a_newer_mmtok_is_refused_by_info_and_train(shards: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mine = _copy(shards, tmp_path / "shards")
    _edit_json(mine / "shard-00000.json", format_version=99)
    before = _snapshot(mine)
    assert main(["info", str(mine)]) == 2
    assert "shard-00000.json was written by a newer mmtok (format 99, this reads 1)" in capsys.readouterr().err
    with pytest.raises(CorpusError, match=NEWER):
        open_shards(mine, verify=True)
    assert _snapshot(mine) == before


def test_a_shard_index_without_a_version_is_read_as_this_one(shards: Path, tmp_path: Path) -> None:
    mine = _copy(shards, tmp_path / "shards")
    _edit_json(mine / "shard-00000.json", format_version=None)
    assert open_shards(mine).num_docs == 6


def test_a_truncated_or_missing_shard_bin_says_to_tokenize_again(shards: Path, tmp_path: Path) -> None:
    mine = _copy(shards, tmp_path / "shards")
    bin_path = mine / "shard-00000.bin"
    whole = bin_path.stat().st_size
    with open(bin_path, "r+b") as f:
        f.truncate(whole - 3)
    with pytest.raises(CorpusError, match=rf"shard-00000\.bin .*\(it holds {whole - 3:,} bytes, not {whole:,}: "
                                          r"it was cut short.*tokenize the corpus again \(mmtok tokenize docs\.jsonl "
                                          r"--out .* --restart"):
        open_shards(mine)
    bin_path.unlink()
    with pytest.raises(CorpusError, match=r"shard-00000\.bin .*\(it is not there\); .*tokenize the corpus again"):
        open_shards(mine)


# --- code files -----------------------------------------------------------------------------------------------

def _code_file(tmp_path: Path) -> Path:
    return save_codes(tmp_path / "photo.png.npz", np.arange(12).reshape(3, 4), {"kind": "image", "fingerprint": "ab"})


def test_a_code_file_records_its_format_version_and_one_without_it_is_read(tmp_path: Path) -> None:
    path = _code_file(tmp_path)
    assert load_codes(path).meta["format_version"] == CODES_VERSION == 1
    old = tmp_path / "old.png.npz"
    np.savez(old, codes=np.arange(4).reshape(2, 2), meta=np.array(json.dumps({"kind": "image"})))
    assert load_codes(old).codes.tolist() == [[0, 1], [2, 3]]


def test_a_code_file_from_a_newer_mmtok_is_refused_and_kept(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "photo.png.npz"
    meta = {"kind": "image", "format_version": 99}
    np.savez(path, codes=np.arange(4).reshape(2, 2), meta=np.array(json.dumps(meta)))
    before = path.read_bytes()
    with pytest.raises(UsageError, match=rf"photo\.png\.npz was {NEWER}"):
        load_codes(path)
    assert main(["decode", str(path), "--out", str(tmp_path / "back")]) == 2
    assert "written by a newer mmtok (format 99, this reads 1)" in capsys.readouterr().err
    assert path.read_bytes() == before
    photo = Path(__file__).resolve().parents[1] / "examples" / "data" / "camera.png"
    shutil.copy(photo, tmp_path / "photo.png")  # encoding it again would replace the newer mmtok's file
    assert main(["encode", str(tmp_path / "photo.png"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "written by a newer mmtok (format 99, this reads 1)" in err and "not a code file" not in err
    assert path.read_bytes() == before


def test_a_byte_flipped_near_the_end_of_a_code_file_is_named_damaged(tmp_path: Path) -> None:
    path = _code_file(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.rindex(b"meta.npy")  # the name in the archive's central directory, near the end
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"photo\.png\.npz: damaged: its archive holds .*encode the original again "
                                         r"\(mmtok encode photo\.png --out ") as e:
        load_codes(path)
    assert "KeyError" not in str(e.value)


def test_an_npz_of_another_program_is_still_said_not_to_be_a_code_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(UsageError, match=r"not a code file from 'mmtok encode': it holds 'w'"):
        load_codes(path)
