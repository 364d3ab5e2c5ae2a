"""Partial decode of slices: every training window of packed shards and every cut of a mixed document reads back
what the slice holds whole, noting what the cuts left out; strict decode refuses the same slices as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from mmtok.core.errors import StreamError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.packing import PackedDataset
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary

SPEC = TokenizerSpec(image="tests.test_interleave:PaletteImages", audio="tests.test_interleave:LoudnessAudio")
V = Vocabulary(256, ranges={"image": 16, "audio": 16, "video": 16})
IL = Interleaver(V)
DOC = ["é€", {"image_codes": [[1, 2, 3], [4, 5, 6]]}, "a🙂", {"audio_codes": [7, 8, 9]},
       {"video_codes": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]}, {"image_codes": [[9]]}, "z€"]


def spans(ids: list[int], il: Interleaver) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each text run and media segment (opener to closer) of a well-formed stream."""
    closers = {il.BOI: il.EOI, il.BOA: il.EOA, il.BOV: il.EOV}
    out, i = [], 0
    while i < len(ids):
        if ids[i] < 256:
            j = i
            while j < len(ids) and ids[j] < 256:
                j += 1
            out.append(("text", i, j))
        elif ids[i] in closers:
            j = ids.index(closers[ids[i]], i) + 1
            out.append(({il.BOI: "image", il.BOA: "audio", il.BOV: "video"}[ids[i]], i, j))
        else:
            j = i + 1  # <bos>, <eos>
        i = j
    return out


def expected(ids: list[int], i: int, j: int, il: Interleaver) -> list[dict[str, Any]]:
    """What the slice ``ids[i:j]`` holds whole, worked out from the spans of the uncut stream: text as its bytes
    (U+FFFD for a cut character), a media segment cut at its start left out, one cut at its end kept up to its
    last ``<eol>`` (image), ``<eof>`` (video) or code (audio)."""
    segs: list[dict[str, Any]] = []
    for kind, a, b in spans(ids, il):
        lo, hi = max(a, i), min(b, j)
        if lo >= hi or (kind != "text" and a < i):
            continue
        if kind == "text":
            segs.append({"text": bytes(ids[lo:hi]).decode("utf-8", "replace")})
            continue
        body = ids[a + 1 : hi]
        r = il.vocab.range(kind)
        if kind == "audio":
            codes = [t - r.start for t in body if t in r]
            if codes:
                segs.append({"audio_codes": codes})
            continue
        rows, row, frames = [], [], []
        for t in body:
            if t in r:
                row.append(t - r.start)
            elif t == il.EOL:
                rows, row = [*rows, row], []
            elif t == il.EOF:
                frames, rows = [*frames, rows], []
        whole = frames if kind == "video" else rows
        if whole:
            segs.append({f"{kind}_codes": whole})
    return segs


def plain(segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in s.items()} for s in segs]


def test_every_cut_of_a_mixed_document_reads_what_it_holds_whole() -> None:
    ids = IL.encode(DOC).ids.tolist()
    noted = 0
    for i in range(len(ids)):
        for j in range(i + 1, len(ids) + 1):
            got = IL.decode(ids[i:j], partial=True)
            assert plain(got) == expected(ids, i, j, IL), (i, j)
            noted += bool(got.repairs)
            assert all(r.position in range(j - i + 1) for r in got.repairs)
    assert noted > 0


def test_an_uncut_document_reads_as_before() -> None:
    s = IL.encode(DOC)
    for kw in ({}, {"partial": True}, {"partial": True, "repair": True}):
        got = IL.decode(s, **kw)
        assert got.repairs == [] and plain(got) == plain(IL.normalize(DOC))


def test_what_the_cuts_leave_out_is_noted() -> None:
    ids = IL.encode(["hi", {"image_codes": [[1, 2], [3, 4]]}, {"audio_codes": [5, 6]}, "ok"]).ids.tolist()
    got = IL.decode(ids[5:11], partial=True)  # from inside the image's first row to inside its second
    assert got == [] and [str(r) for r in got.repairs] == [
        "position 0: the stream starts inside an image (its <boi> is cut off); skipped its 6 token(s)"]
    got = IL.decode(ids[:8], partial=True)
    assert plain(got) == [{"text": "hi"}, {"image_codes": [[1, 2]]}]
    assert [str(r) for r in got.repairs] == ["position 8: the stream ends inside row 1 of the image opened at "
                                             "position 3; kept its 1 whole row(s), dropped the 1 code(s) after them"]
    got = IL.decode(ids[:13], partial=True)
    assert plain(got)[-1] == {"audio_codes": [5]} and got.repairs == []  # audio keeps every code
    got = IL.decode([*b"\xa9t\xc3"], partial=True)
    assert got == [{"text": "\ufffdt\ufffd"}] and [r.action for r in got.repairs] == ["decoded it with U+FFFD"]


def test_partial_is_as_strict_as_before_inside_the_slice() -> None:
    ids = IL.encode(["hi", {"image_codes": [[1, 2], [3, 4]]}, "ok"]).ids.tolist()
    with pytest.raises(StreamError, match="position 9: expected <eol> or <eoi>, got the end of the stream"):
        IL.decode(ids[:9])  # strict
    with pytest.raises(StreamError, match="position 0: expected <bos>, got <eol>"):
        IL.decode(ids[6:])
    ragged = ids[:5] + ids[6:]  # row 0 lost a code, inside the slice
    with pytest.raises(StreamError, match="row 1 to have 1 codes like the first row, not 2"):
        IL.decode(ragged, partial=True)
    with pytest.raises(StreamError, match="position 0: expected text ids that form valid UTF-8, got text:169"):
        IL.decode([*b"\xa9a\xffb"], partial=True)  # a cut character first, then one invalid inside
    with pytest.raises(StreamError, match="position 2: expected text, <eos>, <boi>, <boa> or <bov>, got <eol>"):
        IL.decode([V.range("image").start, V.id("<eoi>"), V.id("<eol>")], partial=True)


def test_documents_packed_back_to_back_read_one_after_another() -> None:
    a, b = IL.encode(["ab", {"audio_codes": [1]}]).ids.tolist(), IL.encode(["cd"]).ids.tolist()
    got = IL.decode(a[1:] + b[:-1] + [V.id("<pad>")] * 3, partial=True)
    assert plain(got) == [{"text": "ab"}, {"audio_codes": [1]}, {"text": "cd"}] and got.repairs == []
    text = IL.encode(["ab"]).ids.tolist() + b
    assert plain(IL.decode(text, partial=True)) == [{"text": "ab"}, {"text": "cd"}]  # no text joins across
    with pytest.raises(StreamError, match="position 7: expected the end of the stream after <eos>"):
        IL.decode(a + b)
    with pytest.raises(StreamError, match="position 7: expected <bos> after <eos>, got text:99"):
        IL.decode(a + b[1:], partial=True)
    bos_only = Interleaver(V, eos=False)
    ids = bos_only.encode(["ab"]).ids.tolist() + bos_only.encode(["cd"]).ids.tolist()
    assert plain(bos_only.decode(ids, partial=True)) == [{"text": "ab"}, {"text": "cd"}]


def _corpus(folder: Path) -> Path:
    """Twelve documents of text, PNG images and WAV clips (seeded)."""
    rng = np.random.default_rng(0)
    lines = []
    for k in range(12):
        img, clip = folder / f"i{k}.png", folder / f"c{k}.wav"
        h, w = (int(x) for x in rng.integers(1, 4, 2) * 16)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img)
        sf.write(clip, (rng.random(int(rng.integers(800, 4000))) - 0.5).astype(np.float32), 16000)
        segs = [{"text": f"doc {k} é€ "}, {"image": img.name}, {"text": " 🙂 "}, {"audio": clip.name}]
        lines.append(json.dumps({"segments": segs[: 1 + k % 4] if k % 5 else segs[::-1]}, ensure_ascii=False))
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "docs.jsonl"


@pytest.mark.parametrize("seq_len", [7, 16, 41])
def test_every_training_window_decodes_and_its_media_decode(tmp_path: Path, seq_len: int) -> None:
    tokenize_corpus(_corpus(tmp_path), tmp_path / "shards", tokenizers=SPEC, shard_tokens=150)
    ds = PackedDataset(tmp_path / "shards", seq_len, shuffle=False)
    il = build_interleaver(SPEC)
    stream = np.concatenate([np.asarray(t, dtype=np.int64) for t in ds.shards.tokens]).tolist()
    assert len(ds.shards.tokens) > 1 and stream.count(il.EOS) == 12
    media = 0
    for k in range(len(ds)):
        w = ds[k]
        got = il.decode(w["ids"], partial=True, media=True)
        n_in = int((w["doc"] >= 0).sum())
        assert plain([{key: s[key] for key in s if key.endswith("codes") or key == "text"} for s in got]) == \
            expected(stream, k * seq_len, k * seq_len + n_in, il), k
        for seg in got:
            if "image" in seg:
                h, wd = seg["image_codes"].shape
                assert seg["image"].shape == (3, 16 * h, 16 * wd)
            if "audio" in seg:
                assert seg["audio"].shape == (seg["audio_codes"].numel() * 400,)
            media += "text" not in seg
    assert media > 0
