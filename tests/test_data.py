"""Corpus -> shards: manifest, skipped documents, --strict, parts, byte-identical resume after
SIGKILL whatever --workers is, and packing that never loses or duplicates a token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from mmtok.core.errors import CorpusError, VocabularyError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.packing import PackedDataset
from mmtok.data.shards import open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
SPEC = TokenizerSpec(image="tests.test_interleave:PaletteImages", audio="tests.test_interleave:LoudnessAudio")
BAD_DOCS = {  # document number -> what the manifest must say
    4: "invalid JSON",
    9: "not valid UTF-8",
    14: "'media/missing.png' does not exist",
    19: "segment 1 (image",  # a corrupt PNG
    24: "segment 2 (audio",  # a corrupt WAV
    29: '"segments" list',
}


def line_of(k: int) -> int:
    """The line number of document k (a blank line follows every tenth document)."""
    return k + (k - 1) // 10


MEDIA_FILES = 24  # distinct images and clips per corpus (documents reuse them)
BAD_LINES = {line_of(k): reason for k, reason in BAD_DOCS.items()}


def make_corpus(folder: Path, n_docs: int = 40, seed: int = 0) -> Path:
    """``n_docs`` lines of text, PNG images and WAV clips, with the bad lines above mixed in."""
    rng = np.random.default_rng(seed)
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(40))
    (media / "corrupt.wav").write_bytes(b"RIFF" + rng.bytes(30))
    lines: list[bytes] = []
    for k in range(1, n_docs + 1):
        if k == 4:
            lines.append(b'{"segments": [{"text": "unterminated')
        elif k == 9:
            lines.append(b'{"segments": [{"text": "caf\xe9"}]}')
        elif k == 14:
            lines.append(json.dumps({"segments": [{"text": "x"}, {"image": "media/missing.png"}]}).encode())
        elif k == 19:
            lines.append(json.dumps({"segments": ["y", {"image": "media/corrupt.png"}]}).encode())
        elif k == 24:
            lines.append(json.dumps({"segments": ["z", {"text": "w"}, {"audio": "media/corrupt.wav"}]}).encode())
        elif k == 29:
            lines.append(json.dumps({"text": "no segments"}).encode())
        else:
            img, clip = f"media/img{k % MEDIA_FILES}.png", f"media/clip{k % MEDIA_FILES}.wav"
            if not (folder / img).exists():
                h, w = (int(x) for x in rng.integers(1, 4, 2) * 16)
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / img)
                wave = (rng.random(int(rng.integers(800, 8000))) - 0.5).astype(np.float32)
                sf.write(folder / clip, wave, 16000)
            segs = [{"text": f"document {k} ✓ "}, {"image": img}, {"text": " and "}, {"audio": clip}]
            lines.append(json.dumps({"segments": segs[: 1 + k % 4]}, ensure_ascii=False).encode())
        if k % 10 == 0:
            lines.append(b"   ")  # blank lines are not documents
    path = folder / "docs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def files(folder: Path) -> dict[str, bytes]:
    """The folder's files, less open_shards' verification cache (it records mtimes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".verified.json"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "shards"
    tokenize_corpus(corpus, out, tokenizers=SPEC, shard_tokens=300)
    return out


def test_shards_manifest_and_skipped(corpus: Path, reference: Path) -> None:
    m = json.loads((reference / "manifest.json").read_text())
    assert [s["line"] for s in m["skipped"]] == sorted(BAD_LINES)
    for s in m["skipped"]:
        assert BAD_LINES[s["line"]] in s["reason"], s
    assert m["docs"] == 40 - len(BAD_LINES)
    assert m["dtype"] == "uint16" and len(m["shards"]) > 3
    assert m["tokens"]["total"] == sum(m["tokens"][k] for k in ("text", "special", "image", "audio", "video"))
    assert m["tokens"]["image"] > 0 and m["tokens"]["audio"] > 0
    il = build_interleaver(SPEC)
    assert m["fingerprint"] == il.vocab.fingerprint and Vocabulary.from_dict(m["vocab"]) == il.vocab
    # every stored document is exactly the stream of its line
    shards = open_shards(reference)
    lines = corpus.read_bytes().split(b"\n")
    stored_lines = [ln for s in sorted(reference.glob("shard-*.json")) for ln in json.loads(s.read_text())["doc_lines"]]
    for doc_ids, line in zip(shards.documents(), stored_lines, strict=True):
        doc = json.loads(lines[line - 1])
        segs = [{k: (str(corpus.parent / v) if k != "text" else v) for k, v in s.items()} for s in doc["segments"]]
        assert np.array_equal(doc_ids, il.encode(segs).ids.numpy())
    assert shards.num_docs == m["docs"] and shards.num_tokens == m["tokens"]["total"]
    open_shards(reference, verify=True)
    for entry in m["shards"]:  # each shard closes at the first document that reaches 300 tokens
        ix = json.loads((reference / entry["index"]).read_text())
        last_doc = ix["offsets"][-1] - ix["offsets"][-2]
        assert ix["tokens"] - last_doc < 300 and (ix["tokens"] >= 300 or entry is m["shards"][-1])


def test_workers_do_not_change_a_byte(corpus: Path, reference: Path, tmp_path: Path) -> None:
    tokenize_corpus(corpus, tmp_path / "w2", tokenizers=SPEC, shard_tokens=300, workers=2)
    assert files(tmp_path / "w2") == files(reference)
    again = tokenize_corpus(corpus, tmp_path / "w2", tokenizers=SPEC, shard_tokens=300)  # finished: a no-op
    assert again == json.loads((reference / "manifest.json").read_text())
    with pytest.raises(CorpusError, match="other settings"):
        tokenize_corpus(corpus, tmp_path / "w2", tokenizers=SPEC, shard_tokens=301)


def test_kill9_then_resume_is_byte_identical(tmp_path: Path, corpus: Path, reference: Path) -> None:
    big = make_corpus(tmp_path / "big", n_docs=400, seed=1)
    want = tmp_path / "want"
    tokenize_corpus(big, want, tokenizers=SPEC, shard_tokens=300)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmtok.cli", "tokenize", str(big), "--out", str(out), "--shard-tokens", "300",
           "--image", SPEC.image, "--audio", SPEC.audio, "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--workers", "2"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "shard-00004.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 the writer mid-run; its workers are orphaned
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while True:  # orphaned workers notice and exit by themselves
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("tokenize workers outlived their killed writer")
        time.sleep(0.05)
    assert not (out / "manifest.json").exists()
    killed = files(out)
    first = (out / "shard-00000.json").stat()
    # the same command again, now with one worker: resumes after the last committed shard
    from mmtok.cli import main

    assert main([*cmd[3:], "--workers", "1"]) == 0
    assert files(out) == files(want)
    again = (out / "shard-00000.json").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # kept, not rewritten
    assert all(files(out)[name] == data for name, data in killed.items() if name.endswith(".json"))


def test_strict_stops_at_first_bad_line(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"docs\.jsonl:4: invalid JSON"):
        tokenize_corpus(corpus, tmp_path / "s", tokenizers=SPEC, shard_tokens=20, strict=True)
    with pytest.raises(CorpusError, match="line 1: segment 1 is an image but no image tokenizer"):
        tokenize_corpus(corpus, tmp_path / "n", tokenizers=TokenizerSpec())  # a mistake in the call, not a bad document
    assert not (tmp_path / "n").exists()  # a failed run leaves no empty folder behind
    out = tmp_path / "locked"
    out.mkdir()
    holder = subprocess.Popen(  # another process holds the folder's lock
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); "
         "fcntl.lockf(f.fileno(), fcntl.LOCK_EX); print(flush=True); time.sleep(60)", str(out / ".lock")],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        with pytest.raises(CorpusError, match="another mmtok tokenize is writing"):
            tokenize_corpus(corpus, out, tokenizers=SPEC)
    finally:
        holder.kill()
        holder.wait()


def test_shard_set_is_a_sequence_of_documents(reference: Path) -> None:
    shards = open_shards(reference)
    docs = list(shards.documents())
    assert len(shards) == shards.num_docs == len(docs) and len(shards.tokens) > 3
    assert [d.tobytes() for d in shards] == [d.tobytes() for d in docs]
    for i in (0, 1, len(docs) // 2, len(docs) - 1, -1, -len(docs)):  # across shard boundaries, from both ends
        assert np.array_equal(shards[i], docs[i]) and shards[i].dtype == np.int64
    with pytest.raises(IndexError, match=f"holds {len(docs)} documents"):
        shards[len(docs)]
    with pytest.raises(IndexError):
        shards[-len(docs) - 1]
    with pytest.raises(TypeError, match="int"):
        shards["0"]  # type: ignore[index]


def test_video_documents(tmp_path: Path) -> None:
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).random((3, 3, 32, 16), dtype=np.float32))
    (tmp_path / "v.jsonl").write_text(json.dumps({"segments": ["a clip: ", {"video": "clip.npy"}]}) + "\n")
    spec = TokenizerSpec(video="tests.test_interleave:PaletteVideo")
    m = tokenize_corpus(tmp_path / "v.jsonl", tmp_path / "out", tokenizers=spec)
    assert m["tokens"]["video"] == 1 + 3 * (2 * 2 + 1) + 1 and m["tokenizers"]["video"] == spec.video
    (doc,) = open_shards(tmp_path / "out").documents()
    segs = build_interleaver(spec).decode(doc)
    assert segs[0] == {"text": "a clip: "} and segs[1]["video_codes"].shape == (3, 2, 1)


def test_damaged_shards_are_refused(reference: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    data = bytearray((copy / "shard-00001.bin").read_bytes())
    data[0] ^= 1
    (copy / "shard-00001.bin").write_bytes(bytes(data))
    open_shards(copy, verify=False)  # same size: only the checksum can tell
    with pytest.raises(CorpusError, match=r"shard-00001\.bin does not match the sha256"):
        open_shards(copy)
    data[0] ^= 1
    (copy / "shard-00001.bin").write_bytes(bytes(data))  # restored: checked again (its mtime moved), accepted
    open_shards(copy)
    (copy / "shard-00002.bin").write_bytes(b"\0\0")
    with pytest.raises(CorpusError, match=r"shard-00002\.bin is missing or does not have"):
        PackedDataset(copy, 8)
    with pytest.raises(ValueError, match="unknown loss_weights"):
        PackedDataset(reference, 8, loss_weights={"smell": 1.0})


def test_parts_cover_the_corpus(corpus: Path, reference: Path, tmp_path: Path) -> None:
    for i in range(3):
        m = tokenize_corpus(corpus, tmp_path / "p", tokenizers=SPEC, shard_tokens=300, part=(i, 3))
        assert m["part"] == [i, 3]
    parts = sorted((tmp_path / "p").glob("part-*"))
    assert [p.name for p in parts] == [f"part-0000{i}-of-00003" for i in range(3)]
    whole = open_shards(reference)
    split = open_shards(tmp_path / "p")
    assert split.num_docs == whole.num_docs and split.num_tokens == whole.num_tokens
    assert sorted(d.tobytes() for d in split.documents()) == sorted(d.tobytes() for d in whole.documents())
    assert [split[i].tobytes() for i in range(len(split))] == [d.tobytes() for d in split.documents()]
    with pytest.raises(CorpusError, match="i/n"):
        tokenize_corpus(corpus, tmp_path / "x", part=(3, 3))


# --------------------------------------------------------------------------- packing


@pytest.mark.parametrize("seq_len", [1, 7, 64, 100_000])
def test_packing_never_loses_or_duplicates_a_token(reference: Path, seq_len: int) -> None:
    stream = np.concatenate(list(open_shards(reference).documents()))
    ds = PackedDataset(reference, seq_len, shuffle=False)
    windows = [ds.window(k) for k in range(ds.num_windows)]
    real = torch.cat([w["doc"] >= 0 for w in windows])
    inputs = torch.cat([w["ids"] for w in windows])[real].numpy()
    targets = torch.cat([w["targets"] for w in windows])[real].numpy()
    assert np.array_equal(inputs, stream[:-1])  # each token but the last an input exactly once, in order
    assert np.array_equal(targets, stream[1:])  # each but the first a target exactly once: every input has one
    assert all(bool((w["targets"] != ds.vocab.id("<pad>")).any()) for w in windows)  # no window without a target
    # shuffled and split over 3 ranks: every window once, and the first few again to give each rank as many
    seen = []
    for rank in range(3):
        part = PackedDataset(reference, seq_len, seed=5, rank=rank, world_size=3)
        seen += [part._mine[i] for i in range(len(part))]
    assert sorted(set(seen)) == list(range(ds.num_windows))
    assert len(seen) == 3 * -(-ds.num_windows // 3)
    assert torch.equal(ds[np.int64(0)]["ids"], ds[0]["ids"])
    for bad in (slice(0, 2), 1.0, True):
        with pytest.raises(TypeError, match="indexed by an int"):
            ds[bad]  # type: ignore[index]


def test_packing_a_stream_one_past_a_window_edge_and_an_empty_one(tmp_path: Path) -> None:
    # 9 tokens in windows of 4 (9 = 2 * 4 + 1): the ninth token has nothing after it, so no window is
    # made for it alone; every window has targets
    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n{"segments": ["yo!"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "s")
    ds = PackedDataset(tmp_path / "s", 4, shuffle=False)
    assert (ds.num_tokens, ds.num_windows) == (9, 2)
    pad = ds.vocab.id("<pad>")
    assert [int((ds.window(k)["targets"] != pad).sum()) for k in range(2)] == [4, 4]
    (tmp_path / "bad.jsonl").write_text('{"segments": [{"image": "missing.png"}]}\n')
    tokenize_corpus(tmp_path / "bad.jsonl", tmp_path / "e")
    with pytest.raises(CorpusError, match=r"hold 0 token.*nothing to pack"):
        PackedDataset(tmp_path / "e", 4)


def test_packing_fields_order_and_masks(reference: Path) -> None:
    ds = PackedDataset(reference, 50, seed=1, loss_weights={"image": 0.25})
    item = ds[0]
    assert {k: (v.dtype, tuple(v.shape)) for k, v in item.items()} == {
        "ids": (torch.int64, (50,)), "targets": (torch.int64, (50,)), "modality": (torch.uint8, (50,)),
        "loss_weight": (torch.float32, (50,)), "doc": (torch.int64, (50,)),
        "target_modality": (torch.uint8, (50,)),
    }
    order = [int(PackedDataset(reference, 50, seed=1)._mine[i]) for i in range(5)]
    assert order == [int(ds._mine[i]) for i in range(5)]
    assert order != [int(PackedDataset(reference, 50, seed=2)._mine[i]) for i in range(5)]
    bos = ds.vocab.id("<bos>")
    for k in range(ds.num_windows):
        w = ds.window(k)
        starts = w["targets"] == bos
        assert (w["loss_weight"][starts] == 0).all()  # no document predicts the next one's <bos>
        real = (w["doc"] >= 0) & (w["targets"] != ds.vocab.id("<pad>"))
        assert set(w["loss_weight"][~starts & real].tolist()) <= {1.0, 0.25}
        d, ids = w["doc"][w["doc"] >= 0], w["ids"][w["doc"] >= 0]
        assert d[0] == 0 and ((d[1:] - d[:-1]) >= 0).all()
        assert torch.equal((ids == bos)[1:], d[1:] != d[:-1])  # a new doc number exactly at each <bos>
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    assert next(iter(loader))["ids"].shape == (4, 50)
    with pytest.raises(VocabularyError, match="image range size"):
        PackedDataset(reference, 8, vocab=Vocabulary(256, ranges={"image": 9, "audio": 16}))


def test_tokenize_command_arguments(corpus: Path, reference: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    args = ["tokenize", str(corpus), "--out", str(tmp_path / "o"), "--shard-tokens", "300",
            "--image", SPEC.image or "", "--audio", SPEC.audio or "", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["docs"] == 40 - len(BAD_LINES) and summary["skipped"] == len(BAD_LINES)
    assert files(tmp_path / "o") == files(reference)
    for bad in ("2/2", "x", "-1/3"):
        try:
            rc = main([*args, "--part", bad])
        except SystemExit as e:  # argparse's own exit, or main's exit status 2
            rc = e.code
        assert rc == 2
    assert "--part" in capsys.readouterr().err


def not_a_tokenizer() -> object:
    return object()


def test_a_spec_that_builds_no_tokenizer_is_refused() -> None:
    with pytest.raises(CorpusError, match=r"'tests\.test_data:not_a_tokenizer' gives an object, which has no "
                                          r"codebook_size, encode, decode"):
        build_interleaver(TokenizerSpec(image="tests.test_data:not_a_tokenizer"))
