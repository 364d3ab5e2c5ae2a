"""A shard folder's metadata is checked before it is read or removed: shards of two runs never mix, shard files
sort by number, a damaged or foreign manifest or index is a one-line error, and --restart deletes only mmtok's
own files."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError
from mmtok.data import shards as shards_mod
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.outdir import discard_shards
from mmtok.data.shards import VERIFIED, ShardWriter, open_shards, shard_manifest
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.text import train_bpe

RESTART = r"re-run mmtok tokenize --restart into it, or tokenize into another --out"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 8-document corpus tokenized twice: ``a`` (2 shards) and ``b`` (4 shards, another run)."""
    folder = tmp_path_factory.mktemp("integrity")
    corpus = folder / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [{"text": "x" * (1 + k)}]}) + "\n" for k in range(8)))
    tokenize_corpus(corpus, folder / "a", shard_tokens=20)
    tokenize_corpus(corpus, folder / "b", shard_tokens=10)
    return folder


def copy(made: Path, name: str, to: Path) -> Path:
    shutil.copytree(made / name, to / name)
    return to / name


def edit(path: Path, change: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data) or data))


def refused(folder: Path, pattern: str) -> str:
    """open_shards' one-line error over ``folder``, with and without verify; it must match ``pattern``."""
    for verify in (False, True):
        with pytest.raises(CorpusError, match=pattern) as e:
            open_shards(folder, verify=verify)
        assert "\n" not in str(e.value)
    return str(e.value)


# --------------------------------------------------------------------------- 1. shards checked against the manifest


def test_a_shard_of_another_run_copied_in_is_refused_and_restart_repairs(made: Path, tmp_path: Path) -> None:
    a = copy(made, "a", tmp_path)
    ref = [d.tolist() for d in open_shards(a)]
    for suffix in ("bin", "json"):
        shutil.copy(made / "b" / f"shard-00001.{suffix}", a / f"shard-00001.{suffix}")
    refused(a, r"shard-00001\.json does not match .*manifest\.json: it is of run '\w+', the manifest of run "
               rf"'\w+'; the folder mixes shards of different runs or was edited by hand: {RESTART}")
    tokenize_corpus(made / "docs.jsonl", a, shard_tokens=20, restart=True)
    assert [d.tolist() for d in open_shards(a)] == ref


def test_resuming_with_other_settings_names_what_differs(made: Path, tmp_path: Path) -> None:
    """A finished run's manifest records its settings and vocabulary; a killed run's indexes only their dtype and
    how full each shard got, so the rest is what its run hash covers: the tokenizers."""
    bpe = train_bpe(["xxxx yyyy zzzz"] * 20, vocab_size=260).save(tmp_path / "bpe")
    corpus, a = made / "docs.jsonl", copy(made, "a", tmp_path)

    def why(**kwargs: Any) -> str:
        with pytest.raises(CorpusError) as e:
            tokenize_corpus(corpus, a, **{"shard_tokens": 20, **kwargs})
        assert "\n" not in str(e.value)
        return str(e.value)

    msg = why(tokenizers=TokenizerSpec(text=str(bpe)))
    assert "finished run with other settings (saved vs now: " in msg and f"--text byte vs {bpe}" in msg
    assert re.search(r"text tokenizer: byte-utf8-surrogatepass-v1 vs [0-9a-f]{16}", msg)
    assert "saved vs now: --shard-tokens 20 vs 10)" in why(shard_tokens=10)
    (a / "manifest.json").unlink()  # as a run killed before its end leaves it
    assert "--shard-tokens 19 to 25 vs 10)" in why(shard_tokens=10)  # its first shard closed at 25 tokens
    msg = why(tokenizers=TokenizerSpec(text=str(bpe)))  # its indexes record the tokenizers that made it
    assert re.search(r"holds shards of a different run \(text tokenizer: byte-utf8-surrogatepass-v1 vs [0-9a-f]{16}\)",
                     msg), msg
    for index in a.glob("shard-*.json"):  # as an earlier mmtok wrote them: the tokenizers only inside the run hash
        fields = json.loads(index.read_text())
        del fields["tokenizers"]
        index.write_text(json.dumps(fields))
    msg = why(tokenizers=TokenizerSpec(text=str(bpe)))
    assert "holds shards of a different run (same corpus, id dtype and --shard-tokens: other tokenizers" in msg


def test_a_killed_runs_folder_names_the_tokenizer_versions_that_made_it(tmp_path: Path) -> None:
    """A new shipped model gets a new fingerprint: resuming a folder an older one began names both versions."""
    was = {"text": {"fingerprint": "byte-utf8-surrogatepass-v1"},
           "image": {"fingerprint": "a" * 16, "label": "image (image v3 (2026-12-01), saved 2026-12-01 by mmtok 0.1.0)"}}
    now = {"text": was["text"], "image": {"fingerprint": "b" * 16, "label": "image (image v4 (2027-01-02))"},
           "audio": {"fingerprint": "c" * 16, "label": "audio (audio v7 (2026-12-02))"}}
    writer = ShardWriter(tmp_path, "run-a", np.dtype(np.uint16), 10, 1, 0, extra={"tokenizers": was})
    writer.add(1, np.arange(12, dtype=np.int64), np.zeros(len(shards_mod.MODALITY_NAMES), np.int64))
    with pytest.raises(CorpusError) as e:
        shards_mod.committed_shards(tmp_path, "run-b", dtype=np.dtype(np.uint16), tokenizers=now)
    assert (f"holds shards of a different run (audio tokenizer: none vs {'c' * 16} [audio (audio v7 (2026-12-02))]; "
            f"image tokenizer: {'a' * 16} [image (image v3 (2026-12-01), saved 2026-12-01 by mmtok 0.1.0)] vs "
            f"{'b' * 16} [image (image v4 (2027-01-02))]); use another --out") in str(e.value)
    assert shards_mod.committed_shards(tmp_path, "run-a", tokenizers=now)  # its own run goes on


def _drop_last(m: dict[str, Any]) -> None:
    m["shards"].pop()


def _drop_last_and_totals(m: dict[str, Any]) -> None:
    last = m["shards"].pop()
    m["docs"] -= last["docs"]
    m["tokens"]["total"] -= last["tokens"]


def _twice(m: dict[str, Any]) -> None:
    m["shards"][1] = dict(m["shards"][0])


def _swapped(m: dict[str, Any]) -> None:
    m["shards"][2], m["shards"][3] = m["shards"][3], m["shards"][2]


def _entry_docs(m: dict[str, Any]) -> None:
    m["shards"][1]["docs"] += 1


def _total_docs(m: dict[str, Any]) -> None:
    m["docs"] += 1


def _entry_sha(m: dict[str, Any]) -> None:
    m["shards"][0]["sha256"] = "0" * 64


@pytest.mark.parametrize(("change", "pattern"), [
    (_drop_last, r"manifest\.json records 8 documents, but the indexes of the shards it lists hold [1-7]\b"),
    (_drop_last_and_totals, r"shard-00003\.json is not listed in .*manifest\.json \(it lists 3 shards\)"),
    (_twice, r"manifest\.json lists \{'bin': 'shard-00000\.bin', 'index': 'shard-00000\.json'\} as shard 1, "
             r"not shard-00001\.bin and shard-00001\.json"),
    (_swapped, r"lists .*shard-00003\.json.* as shard 2"),
    (_entry_docs, r"shard-00001\.json does not match .*manifest\.json: its docs is \d+, the manifest lists \d+"),
    (_total_docs, r"manifest\.json records 9 documents, but the indexes of the shards it lists hold 8"),
    (_entry_sha, r"shard-00000\.json does not match .*manifest\.json: its sha256 is \w{12}\.\.\., the manifest "
                 r"lists 000000000000"),
])
def test_an_edited_manifest_is_refused(made: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                       pattern: str) -> None:
    b = copy(made, "b", tmp_path)
    edit(b / "manifest.json", change)
    assert RESTART in refused(b, pattern)


def _offsets(new: Callable[[list[int]], list[int]]) -> Callable[[dict[str, Any]], None]:
    def change(index: dict[str, Any]) -> None:
        index["offsets"] = new(index["offsets"])
    return change


@pytest.mark.parametrize(("change", "pattern"), [
    (_offsets(lambda o: [0, o[2], o[1], *o[3:]]), r"its offsets do not rise from 0 to its \d+ tokens"),
    (_offsets(lambda o: [*o[:-1], o[-1] - 1]), r"its offsets do not rise from 0 to its \d+ tokens"),
    (_offsets(lambda o: [1, *o[1:]]), r"its offsets do not rise from 0"),
    (_offsets(lambda o: [*o, o[-1]]), r"its offsets are not \d+ whole numbers"),
    (_offsets(lambda o: [float(x) for x in o]), r"its offsets are not \d+ whole numbers"),
    (lambda ix: ix.update(shard=0), r"it is shard 0, listed as shard 1"),
    (lambda ix: ix.update(tokens=ix["tokens"] + 1), r"its tokens is \d+, the manifest lists \d+"),
    (lambda ix: ix.update(run="another"), r"it is of run 'another'"),
    (lambda ix: ix.update(format="notes"), r"it is not an mmtok shard index"),
    (lambda ix: ix.update(dtype="float32"), r"its dtype 'float32' is not the manifest's 'uint16'"),
])
def test_an_edited_index_is_refused(made: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                    pattern: str) -> None:
    a = copy(made, "a", tmp_path)
    edit(a / "shard-00001.json", change)
    assert RESTART in refused(a, r"shard-00001\.json does not match .*manifest\.json: " + f"(?:{pattern})")


def test_two_shards_swapped_on_disk_are_refused(made: Path, tmp_path: Path) -> None:
    b = copy(made, "b", tmp_path)
    for suffix in ("bin", "json"):
        (b / f"shard-00001.{suffix}").rename(tmp_path / "x")
        (b / f"shard-00002.{suffix}").rename(b / f"shard-00001.{suffix}")
        (tmp_path / "x").rename(b / f"shard-00002.{suffix}")
    refused(b, r"shard-00001\.json does not match .*: it is shard 2, listed as shard 1")


def test_the_checks_hash_nothing(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_shards(verify=False) reads metadata only; the hashing stays verify's, once per file."""
    b = copy(made, "b", tmp_path)
    open_shards(b)
    monkeypatch.setattr(shards_mod, "files_sha256", lambda p: pytest.fail(f"hashed {p}"))
    assert len(open_shards(b, verify=False)) == len(open_shards(b)) == 8


# --------------------------------------------------------------------------- 2. shard files sort by number


def test_shards_past_99999_are_listed_by_number(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "r", np.dtype(np.uint16), 1, 1, number=99998)
    for line in range(4):
        w.add(line, np.array([257, 64 + line, 258]), np.zeros(5, np.int64))
    (tmp_path / "shard-notes.json").write_text("notes\n")  # not a shard: left out
    m = shard_manifest(tmp_path, "r", {}, build_interleaver(TokenizerSpec()).vocab, {})
    assert [e["bin"] for e in m["shards"]] == ["shard-99998.bin", "shard-99999.bin", "shard-100000.bin",
                                               "shard-100001.bin"]
    assert m["docs"] == 4


# --------------------------------------------------------------------------- 3. damaged or foreign JSON


def _no_shards(m: dict[str, Any]) -> None:
    del m["shards"]


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda p: p.write_text(p.read_text()[:40]), r"it is not valid JSON: Unterminated string .*\(char \d+\)"),
    (lambda p: p.write_text("[1, 2]"), r"it holds an array, not a JSON object"),
    (lambda p: p.write_bytes(b"\xff\xfe{"), r"it is not UTF-8 text"),
    (lambda p: edit(p, _no_shards), r"it lacks its shards list, vocab or source"),
    (lambda p: p.write_text("[" * 100_000), r"it is not valid JSON: maximum recursion depth exceeded.*"),
])
@pytest.mark.parametrize("name", ["manifest", "index"])
def test_damaged_json_is_one_line_naming_the_file(made: Path, tmp_path: Path, damage: Callable[[Path], None],
                                                  reason: str, name: str) -> None:
    a = copy(made, "a", tmp_path)
    path = a / ("manifest.json" if name == "manifest" else "shard-00001.json")
    if name == "index" and "lacks" in reason:
        damage, reason = (lambda p: p.unlink()), "it does not exist"
    damage(path)
    refused(a, rf"{path.name} is not a readable mmtok shard {name} \({reason}\); .*--restart.*another --out")


def test_a_bad_manifest_is_one_line_in_info_and_tokenize(made: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    a = copy(made, "a", tmp_path)
    (a / "manifest.json").write_text('{"format": "mmtok-sh')
    for argv in (["info", str(a)], ["tokenize", str(made / "docs.jsonl"), "--out", str(a), "--quiet"],
                 ["export", str(a), "--to", "bin", "--out", str(tmp_path / "flat")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "manifest.json is not a readable mmtok shard manifest (it is not " \
                                               "valid JSON: Unterminated string" in err, err


# --------------------------------------------------------------------------- 4. files that are not mmtok's stay


def user_files(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"manifest.json": b'{"name": "my project"}\n', "shard-notes.json": b"notes\n", VERIFIED: b"x\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.mark.parametrize("restart", [False, True])
def test_a_foreign_manifest_stops_tokenize_and_nothing_is_deleted(made: Path, tmp_path: Path, restart: bool) -> None:
    proj = tmp_path / "proj"
    files = user_files(proj)
    with pytest.raises(CorpusError, match=r"proj/manifest\.json is not an mmtok shard manifest \(it has no "
                                          r"\"format\", not \"mmtok-shards\"\); mmtok tokenize does not replace a "
                                          r"manifest\.json it did not write: move it out of .*proj, or tokenize "
                                          r"into another --out") as e:
        tokenize_corpus(made / "docs.jsonl", proj, restart=restart)
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in proj.iterdir() if p.name != ".lock"} == files


def test_restart_removes_only_what_mmtok_wrote(made: Path, tmp_path: Path) -> None:
    a = copy(made, "a", tmp_path)
    open_shards(a)  # writes the verification cache
    mine = {"notes.txt": b"mine\n", "shard-notes.json": b"{}\n", "shard-x.bin": b"\0", ".notes.tmp-1": b"t",
            "shard-00007.json": b'{"name": "not an index"}'}
    for name, data in mine.items():
        (a / name).write_bytes(data)
    discard_shards(a)
    assert {p.name: p.read_bytes() for p in a.iterdir() if p.name != ".lock"} == mine
    (a / "shard-00007.json").unlink()
    m = tokenize_corpus(made / "docs.jsonl", a, shard_tokens=20, restart=True)
    assert m == json.loads((made / "a" / "manifest.json").read_text())
    assert all((a / name).read_bytes() == data for name, data in mine.items() if name != "shard-00007.json")


def test_user_files_beside_a_run_are_left_alone(made: Path, tmp_path: Path) -> None:
    """A folder holding the user's shard-notes.json and .verified.json (no manifest) is tokenized into: resuming
    ignores the notes, open_shards does not overwrite the foreign cache."""
    proj = tmp_path / "proj"
    files = user_files(proj)
    (proj / "manifest.json").unlink()
    del files["manifest.json"]
    tokenize_corpus(made / "docs.jsonl", proj, shard_tokens=20)
    assert len(open_shards(proj)) == 8
    assert {name: (proj / name).read_bytes() for name in files} == files
