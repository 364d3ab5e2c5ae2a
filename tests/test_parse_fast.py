"""The parser's vectorized path for well-formed image and video grids (:meth:`Parser.grid`) gives exactly what
the row-by-row path gives: the same segments, arrays, repairs and errors, on random documents well formed and
corrupted."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.errors import StreamError
from mmtok.stream.parse import Parser
from mmtok.stream.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = Vocabulary(256, ranges={"image": 64, "audio": 64, "video": 64})
IL = mmtok.Interleaver(VOCAB)
SPECIAL = [IL.BOS, IL.EOS, IL.BOI, IL.EOI, IL.EOL, IL.BOA, IL.EOA, IL.BOV, IL.EOV, IL.EOF]


def _doc(rng: random.Random, g: torch.Generator) -> list[Any]:
    """A random document of text, images, audio and videos (small grids, sizes from 1)."""
    doc: list[Any] = []
    for _ in range(rng.randint(1, 5)):
        c = rng.random()
        if c < 0.2:
            doc.append(f"txt é {rng.randint(0, 99)} ")
        elif c < 0.45:
            doc.append({"image_codes": torch.randint(0, 64, (rng.randint(1, 4), rng.randint(1, 4)), generator=g)})
        elif c < 0.6:
            doc.append({"audio_codes": torch.randint(0, 64, (rng.randint(1, 6),), generator=g)})
        else:
            shape = (rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 3))
            doc.append({"video_codes": torch.randint(0, 64, shape, generator=g)})
    return doc


def _corrupt(ids: np.ndarray, rng: random.Random, edits: int) -> np.ndarray:
    """``ids`` after ``edits`` random substitutions, deletions, insertions or swaps of neighbours."""
    for _ in range(edits):
        op, p = rng.random(), rng.randrange(len(ids))
        tok = rng.choice([*SPECIAL, rng.randrange(VOCAB.size)])
        if op < 0.35:
            ids[p] = tok
        elif op < 0.6:
            ids = np.delete(ids, p)
        elif op < 0.85:
            ids = np.insert(ids, p, tok)
        elif p + 1 < len(ids):
            ids[[p, p + 1]] = ids[[p + 1, p]]
        if not len(ids):
            break
    return ids


def _outcome(ids: np.ndarray, repair: bool) -> Any:
    """Everything a decode gives: each segment's values (arrays with dtype, shape and strides), the repairs, or the
    error with its position and what was expected."""
    try:
        d = IL.decode(ids, repair=repair)
    except StreamError as e:
        return "error", str(e), e.position, e.expected
    segs = [{k: (v.tolist(), v.dtype, v.shape, v.stride()) if torch.is_tensor(v) else v for k, v in s.items()}
            for s in d]
    return segs, [str(r) for r in d.repairs]


def _per_row(monkeypatch: pytest.MonkeyPatch, ids: np.ndarray, repair: bool) -> Any:
    """:func:`_outcome` with the vectorized path off: every grid goes through :meth:`Parser.rows`."""
    with monkeypatch.context() as m:
        m.setattr(Parser, "grid", lambda self, b, modality: None)
        return _outcome(ids, repair)


def test_fast_path_matches_rows_on_random_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    rng, g = random.Random(0), torch.Generator().manual_seed(0)
    hits = []
    grid = Parser.grid
    monkeypatch.setattr(Parser, "grid", lambda self, b, modality: hits.append(r := grid(self, b, modality)) or r)
    n_ok = n_bad = 0
    for _ in range(400):
        edits = rng.choice([0, 0, 1, 1, 2, 3, 5])
        ids = _corrupt(IL.encode(_doc(rng, g)).ids.numpy().copy(), rng, edits)
        for repair in (False, True):
            fast = _outcome(ids, repair)
            assert _per_row(monkeypatch, ids, repair) == fast, (ids.tolist(), repair)
        n_ok, n_bad = n_ok + (edits == 0), n_bad + (edits > 0)
    assert n_ok > 50 and n_bad > 200
    assert sum(h is not None for h in hits) > 500 and sum(h is None for h in hits) > 100  # both paths ran


def test_well_formed_grids_skip_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    doc = ["a", {"image_codes": torch.randint(0, 64, (3, 5), generator=g)},
           {"video_codes": torch.randint(0, 64, (4, 2, 3), generator=g)}, {"audio_codes": torch.arange(7)}]
    ids = IL.encode(doc).ids

    def no_rows(*_: Any) -> Any:
        raise AssertionError("a well-formed grid went row by row")

    monkeypatch.setattr(Parser, "rows", no_rows)
    out = IL.decode(ids)
    assert torch.equal(out[1]["image_codes"], doc[1]["image_codes"]) and out[1]["image_codes"].is_contiguous()
    assert torch.equal(out[2]["video_codes"], doc[2]["video_codes"]) and out[2]["video_codes"].is_contiguous()
    assert out[0] == {"text": "a"} and torch.equal(out[3]["audio_codes"], doc[3]["audio_codes"])


def test_frame_whose_eof_moved_goes_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of equal length with as many <eof> as frames, one <eof> moved inside a frame: not a grid (it used to
    be one in a prototype that counted <eof> without checking where each sits)."""
    v = VOCAB.range("video").start
    ids = [IL.BOS, IL.BOV, v + 1, v + 2, IL.EOL, IL.EOF, IL.EOF, v + 3, IL.EOL, v + 4, IL.EOV, IL.EOS]
    with pytest.raises(StreamError) as e:
        IL.decode(ids)
    assert e.value.position == 6  # the empty frame <eof><eof> comes first
    for repair in (False, True):
        assert _outcome(np.array(ids), repair) == _per_row(monkeypatch, np.array(ids), repair)
