"""Document-aligned packing (``PackedDataset(packing="documents")``, ``mmtok train --packing documents``): every
document that fits a window is inside one window whole, a longer one is cuts them into consecutive windows, the rest
of a window is padding at loss weight 0; the default ``"stream"`` cuts the windows as before; ``--resume`` keeps
the run's packing and refuses another; the long-document warning speaks of the mode."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.cli import main
from mmtok.core.errors import ResumeMismatchError, RunRefusedError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.packing import PackedDataset
from mmtok.data.shards import open_shards
from mmtok.lm.train import TrainConfig, train

# byte-level text: a document of n characters is n + 2 tokens (<bos> ... <eos>); with seq_len 64 a document of up
# to 65 tokens fits one window (64 inputs, 64 next-token targets), 66 and more are cut
LENGTHS = [30, 50, 20, 65, 66, 10, 140, 40, 5, 64, 12, 33, 200, 7, 9, 45]
L = 64


def corpus(folder: Path, lengths: list[int]) -> Path:
    """Shards of text documents of exactly ``lengths`` tokens each, over several shards."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"segments": [chr(97 + k % 26) * (n - 2)]}) for k, n in enumerate(lengths)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    tokenize_corpus(folder / "docs.jsonl", folder / "shards", shard_tokens=300)
    return folder / "shards"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus(tmp_path_factory.mktemp("packing"), LENGTHS)


def seen(w: dict[str, torch.Tensor]) -> np.ndarray:
    """The tokens a window holds: its inputs, then the target of its last input."""
    m = int((w["doc"] >= 0).sum())
    return np.concatenate([w["ids"][:m].numpy(), w["targets"][m - 1 : m].numpy()])


def test_every_document_that_fits_is_whole_in_one_window(shards: Path) -> None:
    docs = [d.tolist() for d in open_shards(shards).documents()]
    assert [len(d) for d in docs] == LENGTHS
    ds = PackedDataset(shards, L, shuffle=False, packing="documents")
    bos = ds.vocab.id("<bos>")
    pieces: list[list[int]] = []
    for k in range(ds.num_windows):
        toks = seen(ds.window(k))
        cuts = [i for i in np.flatnonzero(toks == bos).tolist() if i > 0]
        pieces += [p.tolist() for p in np.split(toks, cuts)]
    for d in docs:
        if len(d) <= L + 1:
            assert pieces.count(d) == 1, len(d)  # whole, in one window, once
    assert not any(len(p) > L + 1 for p in pieces)
    # the 66-, 140- and 200-token documents each start a window and are cut: ceil((n - 1) / 64) windows
    starts = [int(s) for s in ds.spans[0]]
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)])
    for n in (66, 140, 200):
        a = int(offsets[LENGTHS.index(n)])
        assert [s for s in starts if a <= s < a + n - 1] == list(range(a, a + n - 1, L))


def test_targets_at_most_once_and_every_in_document_target_once(shards: Path) -> None:
    ds = PackedDataset(shards, L, shuffle=False, packing="documents")
    stream = np.concatenate(list(open_shards(shards).documents()))
    counts = np.zeros(stream.size, np.int64)
    weighted = np.zeros(stream.size, np.int64)
    for k, (a, m) in enumerate(zip(*ds.spans, strict=True)):
        w = ds.window(k)
        assert 1 <= m <= L and int((w["doc"] >= 0).sum()) == m
        assert np.array_equal(w["ids"][:m].numpy(), stream[a : a + m])
        assert np.array_equal(w["targets"][:m].numpy(), stream[a + 1 : a + m + 1])
        counts[a + 1 : a + m + 1] += 1
        weighted[a + 1 : a + m + 1] += (w["loss_weight"][:m] > 0).numpy()
    doc_starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    assert counts.max() == 1  # every token a target at most once
    inside = np.ones(stream.size, bool)
    inside[doc_starts] = False  # a <bos> is predicted by nothing in its document
    assert (weighted[inside] == 1).all() and (weighted[~inside] == 0).all()


def test_padding_has_loss_weight_0_and_its_share_is_known(shards: Path) -> None:
    ds = PackedDataset(shards, L, shuffle=False, packing="documents")
    pad, padded = ds.vocab.id("<pad>"), 0
    for k in range(ds.num_windows):
        w = ds.window(k)
        rest = w["doc"] < 0
        padded += int(rest.sum())
        assert (w["ids"][rest] == pad).all() and (w["targets"][rest] == pad).all()
        assert (w["loss_weight"][rest] == 0).all() and rest[: int((~rest).sum())].logical_not().all()
    assert padded > 0 and ds.padding == pytest.approx(padded / (ds.num_windows * L))
    assert ds.num_windows > PackedDataset(shards, L, shuffle=False).num_windows  # whole documents cost windows


def test_known_answer_and_stream_mode_unchanged(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n{"segments": ["yo!"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "s")
    # the module's example: the stream cut at 0, 4, 8 (a window crosses into "yo!")
    for ds in (PackedDataset(tmp_path / "s", 4, shuffle=False),
               PackedDataset(tmp_path / "s", 4, shuffle=False, packing="stream")):
        w = ds[0]
        assert (w["ids"].tolist(), w["targets"].tolist(), w["doc"].tolist(), w["loss_weight"].tolist()) == (
            [257, 104, 105, 258], [104, 105, 258, 257], [0, 0, 0, 0], [1.0, 1.0, 1.0, 0.0])
        assert ds.window(1)["ids"].tolist() == [257, 121, 111, 33]
    ds = PackedDataset(tmp_path / "s", 4, shuffle=False, packing="documents")
    w0, w1 = ds.window(0), ds.window(1)
    assert (w0["ids"].tolist(), w0["targets"].tolist(), w0["doc"].tolist(), w0["loss_weight"].tolist()) == (
        [257, 104, 105, 256], [104, 105, 258, 256], [0, 0, 0, -1], [1.0, 1.0, 1.0, 0.0])
    assert (w1["ids"].tolist(), w1["targets"].tolist(), w1["doc"].tolist()) == (
        [257, 121, 111, 33], [121, 111, 33, 258], [0, 0, 0, 0])
    assert ds.vocab.id("<pad>") == 256 and ds.num_windows == 2 and ds.padding == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match=r"packing='whole': give 'stream'.*or 'documents'"):
        PackedDataset(tmp_path / "s", 4, packing="whole")


def test_stream_mode_windows_are_the_fixed_offsets(shards: Path) -> None:
    stream = np.concatenate(list(open_shards(shards).documents()))
    ds = PackedDataset(shards, 50, seed=3, packing="stream")
    assert ds.num_windows == -(-(stream.size - 1) // 50) and ds.spans[0].tolist() == list(range(0, stream.size - 1, 50))
    for k in range(ds.num_windows):
        w, real = ds.window(k), min(50, stream.size - 1 - 50 * k)
        assert np.array_equal(w["ids"][:real].numpy(), stream[50 * k : 50 * k + real])
        assert np.array_equal(w["targets"][:real].numpy(), stream[50 * k + 1 : 50 * k + real + 1])
    same = PackedDataset(shards, 50, seed=3)
    for i in range(len(ds)):
        assert all(torch.equal(v, same[i][key]) for key, v in ds[i].items())


def test_ranks_shuffling_and_positions_work_alike(shards: Path) -> None:
    full = PackedDataset(shards, L, shuffle=False, packing="documents")
    parts = [PackedDataset(shards, L, seed=4, rank=r, world_size=3, packing="documents", positions_3d=True)
             for r in range(3)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-full.num_windows // 3)
    assert sorted({int(p._mine[i]) for p in parts for i in range(len(p))}) == list(range(full.num_windows))
    before = parts[0]._mine.copy()
    parts[0].set_epoch(1)
    assert not np.array_equal(before, parts[0]._mine)
    item = parts[1][0]
    assert item["pos"].shape == (L, 3)
    starts = torch.ones(L, dtype=torch.bool)
    starts[1:] = item["doc"][1:] != item["doc"][:-1]
    real = item["doc"] >= 0
    assert (item["pos"][starts & real, 0] == 0).all()  # positions restart at each document


def tiny(shards: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), seq_len=L, batch_size=2, steps=2, warmup=0, save_every=1,
                threads=1, packing="documents")
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_resume_keeps_the_packing_and_refuses_another(shards: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    flags = ["train", "--data", str(shards), "--out", str(out), "--seq-len", str(L), "--batch-size", "2",
             "--warmup", "0", "--threads", "1", "--no-progress", "--save-every", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*flags, "--steps", "2", "--packing", "documents"]) == 0
    said = capsys.readouterr().out
    n = PackedDataset(shards, L, packing="documents")
    assert f"{n.num_windows} training windows of {L} tokens, whole documents ({n.padding:.0%} of their tokens padding)" in said
    with pytest.raises(ResumeMismatchError, match=r"--packing stream \(the run's: documents\)"):
        train(tiny(shards, out, steps=3, packing="stream"), resume=True, progress=False)
    assert main([*flags, "--steps", "3", "--resume"]) == 0  # --packing left out: the run's own
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows)
    assert json.loads((out / "ckpt-0000003" / "config.json").read_text())["config"]["train"]["packing"] == "documents"


def test_a_run_saved_before_packing_was_recorded_is_stream(tmp_path: Path) -> None:
    from mmtok.lm.train_checks import check_settings

    train_cfg = {"seq_len": 64, "seed": 0, "rope_3d": False, "batch_size": 2, "grad_accum": 1, "steps": 5}
    saved = {"train": train_cfg, "batch": {"world_size": 1}}
    now = {"train": {**train_cfg, "packing": "stream"}, "batch": {"world_size": 1}}
    check_settings(tmp_path, now, saved, step=2, consumed=4)
    now["train"]["packing"] = "documents"
    with pytest.raises(ResumeMismatchError, match=r"--packing documents \(the run's: stream\)"):
        check_settings(tmp_path, now, saved, step=2, consumed=4)


def test_bad_packing_is_refused(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RunRefusedError, match=r"packing must be 'stream' .* or 'documents' .*got 'whole'"):
        train(tiny(shards, tmp_path / "run", packing="whole"), progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(shards), "--out", str(tmp_path / "r"), "--packing", "whole"])
    assert e.value.code == 2 and "--packing" in capsys.readouterr().err


def test_the_warning_speaks_of_the_packing() -> None:
    from mmtok.lm.windows import long_documents_note, window_fit

    lengths = np.array(LENGTHS)
    stream = long_documents_note(window_fit(lengths, seq_len=L), seq_len=L, where="s")
    assert stream is not None and "still cut where one crosses a window edge" in stream
    assert "--packing documents" in stream
    fit = window_fit(lengths, seq_len=L, packing="documents")
    assert (fit.longer, fit.longest) == (3, 200)  # 66, 140, 200: 65 tokens fit 64 inputs and their targets
    said = long_documents_note(fit, seq_len=L, where="s", packing="documents")
    assert said is not None and said.startswith("3 of the 16 documents in s are longer than a window of --seq-len 64 ")
    assert "cuts them into consecutive windows" in said and "crosses a window edge" not in said
    assert long_documents_note(window_fit(np.array([65, 10]), seq_len=L, packing="documents"), seq_len=L,
                               where="s", packing="documents") is None


def test_train_warns_in_documents_mode(shards: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"3 of the 16 documents .* cuts them into consecutive windows"):
        train(tiny(shards, tmp_path / "run", steps=1), progress=False)
