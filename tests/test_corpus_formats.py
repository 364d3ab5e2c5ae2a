"""Corpus build helpers in benchmarks/: each archive reader round-trips a tiny synthetic
archive and rejects malformed ones with ``FormatError``; license lookup; photo selection;
deterministic group splits. No network and no corpus data: everything is built here."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import corpus_audio
import corpus_debs
import corpus_formats as cf
import corpus_image
import corpus_manifest
import fetch_corpus
from corpus_formats import FormatError
from corpus_source import Item, Package, copy_of

SPLITS = ("train", "validation", "test")

# --------------------------------------------------------------------------- builders

MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(60)  # MPEG-1 layer III sync, 128 kbit/s


def make_queen(entries: list[tuple[str, bytes]], compression: int = 1) -> bytes:
    """A queen.1c: QTBL header, 21-byte table entries, then the blobs in order."""
    off = cf.QUEEN_HEADER + cf.QUEEN_ENTRY * len(entries)
    head = b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([compression]) + struct.pack(">H", len(entries))
    table, blobs = b"", b""
    for bundle, (name, blob) in enumerate(entries, start=1):
        table += (
            name.encode().ljust(12, b"\0") + bytes([bundle]) + struct.pack(">II", off, len(blob))
        )
        blobs += blob
        off += len(blob)
    return head + table + blobs


def make_dog(talk_key: int, amos: bool = True) -> bytes:
    body = struct.pack(">hhh", 3, 9, talk_key) + bytes(10)
    return (b"AmBk" + bytes(8) + b"Datas   " if amos else b"") + body


def make_rcc(files: dict[str, bytes], version: int = 3, zlib_paths: tuple[str, ...] = ()) -> bytes:
    """A Qt .rcc holding ``files`` (paths with '/'), tree laid out breadth first as Qt does."""
    root: dict = {}
    for path, data in files.items():
        node = root
        *folders, leaf = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = data
    entries, first_child = [("", root, "")], {}
    for i, (_, node, path) in enumerate(entries):  # grows while iterating: breadth first
        if isinstance(node, dict):
            first_child[i] = len(entries)
            entries += [(k, v, f"{path}/{k}" if path else k) for k, v in node.items()]
    names, name_at = b"", {}
    tree, data = b"", b""
    for i, (name, node, path) in enumerate(entries):
        if i and name not in name_at:
            name_at[name] = len(names)
            names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        noff = name_at.get(name, 0)
        if isinstance(node, dict):
            rec = struct.pack(">IHII", noff, cf.RCC_DIRECTORY, len(node), first_child[i])
        else:
            flags, payload = 0, node
            if path in zlib_paths:
                flags, payload = (
                    cf.RCC_COMPRESSED,
                    struct.pack(">I", len(node)) + zlib.compress(node),
                )
            rec = struct.pack(">IHHHI", noff, flags, 0, 1, len(data))
            data += struct.pack(">I", len(payload)) + payload
        tree += rec.ljust(14 if version == 1 else 22, b"\0")
    t = 24 if version == 3 else 20
    head = b"qres" + struct.pack(">IIII", version, t, t + len(tree), t + len(tree) + len(data))
    return head + (bytes(4) if version == 3 else b"") + tree + data + names


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_jpeg(size: tuple[int, int] = (16, 8), progressive: bool = True) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 10)).save(buf, "JPEG", progressive=progressive)
    return buf.getvalue()


# --------------------------------------------------------------------------- queen.1c


def test_queen_round_trip() -> None:
    entries = [
        ("010001J1.SB", b"HDR" + MP3_FRAME),
        ("APE.DOG", make_dog(42)),
        ("C1000001.SB", b"ID3\x04" + MP3_FRAME),
    ]
    data = make_queen(entries)
    version, compression, index = cf.queen_index(data)
    assert (version, compression) == ("CEM10", 1)
    assert [(e.name, e.bundle, e.size) for e in index] == [
        (name, i, len(blob)) for i, (name, blob) in enumerate(entries, start=1)
    ]
    for e, (_, blob) in zip(index, entries, strict=True):
        assert data[e.offset : e.offset + e.size] == blob
    assert cf.queen_clip(data, index[0]) == MP3_FRAME  # small header before the sync is cut
    assert cf.queen_clip(data, index[2]) == b"ID3\x04" + MP3_FRAME  # an ID3 tag is kept
    dog = index[1]
    assert cf.queen_dog_talk_key(data[dog.offset : dog.offset + dog.size]) == 42
    assert cf.queen_dog_talk_key(make_dog(-7, amos=False)) == -7


def test_queen_bad_magic() -> None:
    data = make_queen([("A.SB", MP3_FRAME)])
    with pytest.raises(FormatError, match="QTBL"):
        cf.queen_index(b"XTBL" + data[4:])


def test_queen_every_truncation_raises() -> None:
    data = make_queen([("A.SB", MP3_FRAME), ("B.DOG", make_dog(1))])
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            cf.queen_index(data[:cut])
    with pytest.raises(FormatError, match="truncated queen table: 2 entries"):
        cf.queen_index(data[: cf.QUEEN_HEADER + cf.QUEEN_ENTRY])


def test_queen_entry_past_end_and_bad_clip() -> None:
    data = bytearray(make_queen([("A.SB", bytes(40))]))
    with pytest.raises(FormatError, match="no MP3 frame sync"):
        cf.queen_clip(bytes(data), cf.queen_index(bytes(data))[2][0])
    struct.pack_into(">I", data, cf.QUEEN_HEADER + 17, 10_000)  # size of entry 0
    with pytest.raises(FormatError, match=r"A\.SB runs past the end"):
        cf.queen_index(bytes(data))
    with pytest.raises(FormatError, match="DOG dialogue header"):
        cf.queen_dog_talk_key(make_dog(5)[:23])


def test_queen_handler_groups_by_speaker(tmp_path: Path) -> None:
    """queen.1c -> one .mp3 item per .SB entry, grouped by who speaks (the split unit)."""
    entries = [
        ("APE2.DOG", make_dog(12)),
        ("120001J1.SB", MP3_FRAME),  # Joe in dialogue 12
        ("120001P1.SB", MP3_FRAME),  # the ape in dialogue 12
        ("130001P1.SB", MP3_FRAME),  # dialogue without a .DOG
        ("C1000001.SB", MP3_FRAME),  # cutaway: mixed speakers
        ("JOE01.SB", MP3_FRAME),
    ]
    folder = tmp_path / "usr/share/scummvm/flight-of-the-amazon-queen"
    folder.mkdir(parents=True)
    (folder / "queen.1c").write_bytes(make_queen(entries))
    pkg = Package("flight-of-the-amazon-queen", "1", "q.deb", tmp_path, "")
    items = list(corpus_audio.audio_queen(pkg))
    assert [(i.rel, i.group) for i in items] == [
        ("120001j1.mp3", "queen:joe"),
        ("120001p1.mp3", "queen:ape"),
        ("130001p1.mp3", "queen:dialogue13"),
        ("c1000001.mp3", "queen:mixed-cutaway"),
        ("joe01.mp3", "queen:joe"),
    ]
    items[1].make(tmp_path / "out.mp3")
    assert (tmp_path / "out.mp3").read_bytes() == MP3_FRAME


def test_fillets_handler_groups_by_character_across_levels(tmp_path: Path) -> None:
    """A Fish Fillets character speaks in many levels (the same clip in some): one group per voice, the two
    fish also when their lines are named WHO-line; lines without a speaker stay per level."""
    sub = tmp_path / "usr/share/games/fillets-ng"
    names = ["sound/cabin1/en/k1-chob-1.ogg", "sound/pavement/en/k1-chob-1.ogg", "sound/rush/cs/m-hraje.ogg",
             "sound/rush/cs/v-upozornit.ogg", "sound/city/cs/vit-m-ahoj.ogg", "sound/atlantis/cs/sp-kalet.ogg"]
    for name in names:
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_bytes(b"OggS")
    pkg = Package("fillets-ng-data", "1", "f.deb", tmp_path, "")
    groups = {i.rel: i.group for i in corpus_audio.audio_fillets(pkg)}
    assert groups == {"sound/atlantis/cs/sp-kalet.ogg": "fillets:atlantis",
                      "sound/cabin1/en/k1-chob-1.ogg": "fillets:voice-chob",
                      "sound/city/cs/vit-m-ahoj.ogg": "fillets:fish-small",
                      "sound/pavement/en/k1-chob-1.ogg": "fillets:voice-chob",
                      "sound/rush/cs/m-hraje.ogg": "fillets:fish-small",
                      "sound/rush/cs/v-upozornit.ogg": "fillets:fish-big"}, groups
    rows = [{"group": g} for g in sorted(set(groups.values()))]
    fetch_corpus.assign_splits(rows, corpus_audio.SPLITS)
    assert {r["group"]: r["split"] for r in rows if r["group"] != "fillets:atlantis"} == {
        "fillets:voice-chob": "train", "fillets:fish-small": "train", "fillets:fish-big": "train"}


def test_identical_files_are_kept_once_in_the_earliest_split(tmp_path: Path) -> None:
    rows = []
    for path, split, data in (("a/x.ogg", "test", b"same"), ("b/y.ogg", "train", b"same"),
                              ("c/z.ogg", "validation", b"same"), ("d/w.ogg", "test", b"other")):
        (tmp_path / path).parent.mkdir(parents=True)
        (tmp_path / path).write_bytes(data)
        rows.append({"path": path, "split": split, "source": path[0]})
    skipped: dict = {}
    kept = corpus_manifest.drop_duplicates(rows, tmp_path, skipped)
    assert sorted(r["path"] for r in kept) == ["b/y.ogg", "d/w.ogg"]
    assert not (tmp_path / "a/x.ogg").exists() and not (tmp_path / "c/z.ogg").exists()
    assert skipped["a"] == {"same content as a file kept (test)": 1}


# --------------------------------------------------------------------------- Qt .rcc

RCC_FILES = {
    "img/a.png": b"png bytes" * 20,
    "img/deep/b.jpg": b"\xff\xd8\xff jpeg" * 7,
    "readme.txt": b"hello rcc",
}


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("zlib_paths", [(), ("img/a.png", "readme.txt")])
def test_rcc_round_trip(version: int, zlib_paths: tuple[str, ...]) -> None:
    entries = cf.rcc_entries(make_rcc(RCC_FILES, version, zlib_paths))
    assert {e.path: e.payload for e in entries} == RCC_FILES
    assert len(entries) == len(RCC_FILES)
    assert all(e.skipped == "" for e in entries)


def test_rcc_zstd_without_zstandard_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(make_rcc({"a.webp": b"zstd frame"}, version=2))
    (tree,) = struct.unpack_from(">I", data, 8)
    struct.pack_into(">H", data, tree + 22 + 4, cf.RCC_ZSTD)  # flags of entry 1 (the file)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    (entry,) = cf.rcc_entries(bytes(data))
    assert (entry.path, entry.payload) == ("a.webp", None)
    assert "zstandard" in entry.skipped


def test_rcc_bad_magic_and_version() -> None:
    data = make_rcc(RCC_FILES)
    with pytest.raises(FormatError, match="qres"):
        cf.rcc_entries(b"QRES" + data[4:])
    with pytest.raises(FormatError, match="unsupported rcc version 9"):
        cf.rcc_entries(data[:4] + struct.pack(">I", 9) + data[8:])


@pytest.mark.parametrize("zlib_paths", [(), tuple(RCC_FILES)])
def test_rcc_every_truncation_raises(zlib_paths: tuple[str, ...]) -> None:
    data = make_rcc(RCC_FILES, 3, zlib_paths)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            cf.rcc_entries(data[:cut])


def test_rcc_tree_loop_and_corrupt_zlib() -> None:
    data = bytearray(make_rcc({"d/a.txt": b"x" * 50}, 3, ("d/a.txt",)))
    (tree,) = struct.unpack_from(">I", data, 8)
    struct.pack_into(">I", data, tree + 22 + 10, 1)  # directory d: first child = itself
    with pytest.raises(FormatError, match="loop"):
        cf.rcc_entries(bytes(data))
    data = bytearray(make_rcc({"a.txt": b"x" * 50}, 3, ("a.txt",)))
    (dat,) = struct.unpack_from(">I", data, 12)
    data[dat + 8 : dat + 12] = b"\xde\xad\xbe\xef"  # inside the zlib stream
    with pytest.raises(FormatError, match=r"a\.txt: corrupt zlib data"):
        cf.rcc_entries(bytes(data))
    data = bytearray(make_rcc({"a.txt": b"x" * 50}, 3, ("a.txt",)))
    struct.pack_into(">I", data, dat + 4, 49)  # declared uncompressed size
    with pytest.raises(FormatError, match="header says 49"):
        cf.rcc_entries(bytes(data))


# --------------------------------------------------------------------------- zip / pk3


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_round_trip(method: int) -> None:
    members = {"music/": b"", "music/a.ogg": b"OggS-a", "music/B.OGG": b"OggS-b", "x.txt": b"x"}
    data = make_zip(members, method)
    assert cf.zip_members(data, (".ogg",)) == [
        ("music/a.ogg", b"OggS-a"),
        ("music/B.OGG", b"OggS-b"),
    ]
    assert dict(cf.zip_members(data)) == {k: v for k, v in members.items() if not k.endswith("/")}


def test_zip_malformed() -> None:
    data = make_zip({"a.ogg": b"OggS" * 100}, zipfile.ZIP_STORED)
    with pytest.raises(FormatError, match="not a readable zip"):
        cf.zip_members(b"PK\x05\x06 not really a zip")
    with pytest.raises(FormatError, match="not a readable zip"):
        cf.zip_members(data[: len(data) // 2])
    corrupt = data.replace(b"OggSOggS", b"OggSOggX", 1)  # member bytes, CRC no longer matches
    with pytest.raises(FormatError, match="CRC"):
        cf.zip_members(corrupt)


# --------------------------------------------------------------------------- JPEG in a blob


def test_jpeg_streams_round_trip() -> None:
    a, b = make_jpeg(), make_jpeg((24, 24), progressive=False)
    thumb = make_jpeg((4, 4))
    with_thumb = a[:2] + b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb + a[2:]
    blob = b"\x00eet" + b"\xff\xd8\xff-broken" + a + b"gap\xff\xd9" + with_thumb + b
    found = cf.jpeg_streams(blob)
    assert [s for _, s in found] == [a, with_thumb, b]  # the thumbnail is not reported apart
    assert all(blob[off : off + len(s)] == s for off, s in found)
    assert cf.jpeg_streams(a) == [(0, a)]  # a stream that ends the blob
    with Image.open(io.BytesIO(found[2][1])) as im:
        assert im.size == (24, 24)


def test_jpeg_truncated_is_not_reported() -> None:
    jpg = make_jpeg()
    for cut in range(len(jpg)):
        assert cf.jpeg_streams(jpg[:cut]) == []
    assert cf.jpeg_streams(b"no jpeg here \xff\xd8") == []


# --------------------------------------------------------------------------- licenses

DEP5 = (
    "Format: x\n\nFiles: *\nCopyright: a\nLicense: GPL-2+\n\n"
    "Files:\n base/music/b.ogg\n other.ogg\nCopyright: b\nLicense: CC-BY-3.0\n text\n\n"
    "Files: debian/*\nLicense: MIT\n"
)


def test_dep5_license() -> None:
    lic = corpus_debs.license_for
    assert lic(DEP5, ["music/b.ogg"]) == "CC-BY-3.0"  # archive member lacks the base/ prefix
    assert lic(DEP5, ["usr/share/x/a.ogg"]) == "GPL-2+"
    assert lic(DEP5, ["usr/share/y/other.ogg"]) == "CC-BY-3.0"  # installed prefix
    header = "Format: x\nLicense: LGPL-2.1\n\nFiles: doc/*\nLicense: MIT\n"
    assert lic(header, ["a.wav"]) == "LGPL-2.1"
    pkg = Package("p", "1", "p.deb", Path("."), DEP5)
    assert corpus_debs.package_license(pkg, ["usr/share/p/sounds/other.ogg"]) == "CC-BY-3.0"


def test_free_form_license() -> None:
    prose = "Copyright:\n under the terms of the GNU General Public License\n version 2 dated June"
    assert corpus_debs.license_for(prose, ["x"]) == "GPL-2"
    assert corpus_debs.license_for("no license words", ["x"]) == "unknown"


# --------------------------------------------------------------------------- photographs


def test_photo_selection() -> None:
    flat = np.zeros((16, 16))
    cands = [
        ("a_800x600.jpg", 800, 600, flat),
        ("a.jpg", 1600, 1200, flat + 3),
        ("a.png", 10, 90, flat),
        ("b_800x600.jpg", 800, 600, flat + 100),
    ]
    assert corpus_image.near_duplicates(cands) == {0}
    assert corpus_image.size_free_name("x/Elephants_3840x2160.jpg") == "elephants"
    reject = corpus_image.photo_reject_reason
    noise = np.random.default_rng(0).integers(0, 256, (450, 600, 3), dtype=np.uint8)
    assert reject(Image.fromarray(noise)) is None
    assert reject(Image.new("RGB", (600, 450), "red")).startswith("few")
    assert reject(Image.new("RGB", (600, 450), "red"), colours=False) is None
    assert reject(Image.new("RGBA", (600, 450))) == "transparent cut-out"
    assert reject(Image.new("RGB", (300, 900))).startswith("small")
    assert reject(Image.new("L", (600, 450), 128)).startswith("grey drawing")


# --------------------------------------------------------------------------- splits


def test_split_for_group_is_fixed() -> None:
    """sha256-based: the same group gets the same split in every run and on every machine."""
    split = fetch_corpus.split_for_group
    assert split("queen:joe") == "train"
    assert split("tuxpaint:fr") == "validation"
    assert split("gcompris:explore_farm_animals") == "test"
    counts = {s: 0 for s in SPLITS}
    for i in range(2000):
        counts[split(f"g{i}")] += 1
    assert 1400 < counts["train"] < 1800 and counts["validation"] > 120 and counts["test"] > 120


def synthetic_rows(n_groups: int = 300, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    groups = [f"src{g % 3}:speaker{g}" for g in range(n_groups)] + ["fixed:a", "fixed:b"]
    groups += ["codec2:hts1", "codec2:kristoff"]
    rows = [{"path": f"{g}/{k}.ogg", "group": g} for g in groups for k in range(rng.randint(1, 5))]
    rng.shuffle(rows)
    return rows


def test_assign_splits_by_group_with_overrides() -> None:
    overrides = {"fixed:a": "test", "codec2:*": "validation", "fixed:*": "train"}
    rows = synthetic_rows()
    fetch_corpus.assign_splits(rows, overrides)
    per_group: dict[str, set[str]] = {}
    for r in rows:
        per_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in per_group.values())  # a group never spans two splits
    assert per_group["fixed:a"] == {"test"}  # an exact entry wins over a prefix
    assert per_group["fixed:b"] == {"train"}
    assert per_group["codec2:hts1"] == per_group["codec2:kristoff"] == {"validation"}
    first = {r["group"]: r["split"] for r in rows}
    hashed = {g: s for g, s in first.items() if g.startswith("src")}
    assert all(s == fetch_corpus.split_for_group(g) for g, s in hashed.items())
    assert set(hashed.values()) == set(SPLITS)

    again = synthetic_rows(seed=1)  # other file counts, other order
    fetch_corpus.assign_splits(again, overrides)
    assert {r["group"]: r["split"] for r in again} == first  # deterministic


def test_fixed_split_tables_are_valid() -> None:
    for table in (corpus_audio.SPLITS, corpus_image.SPLITS):
        assert set(table.values()) <= set(SPLITS)
        assert all("*" not in k[:-1] for k in table)  # only a trailing prefix wildcard


# --------------------------------------------------------------------------- damaged archives


@pytest.mark.parametrize(
    ("field", "fmt", "value"),
    [(10, "<H", 99), (8, "<H", 1), (42, "<I", 10**6)],
    ids=["compression-method", "encrypted", "header-offset"],
)
def test_zip_damage_of_every_kind_is_a_format_error(field: int, fmt: str, value: int) -> None:
    """zipfile reports some damage as NotImplementedError, RuntimeError or ValueError: all
    of it comes out as FormatError (a field of the central directory entry is damaged)."""
    data = bytearray(make_zip({"a.ogg": b"OggS" * 100}, zipfile.ZIP_STORED))
    struct.pack_into(fmt, data, data.rfind(b"PK\x01\x02") + field, value)
    with pytest.raises(FormatError, match="not a readable zip archive"):
        cf.zip_members(bytes(data))


def test_rcc_name_that_is_not_utf16_is_a_format_error() -> None:
    data = bytearray(make_rcc({"a.txt": b"x"}))
    (names,) = struct.unpack_from(">I", data, 16)
    data[names + 6 : names + 8] = b"\xdc\x00"  # a lone low surrogate
    with pytest.raises(FormatError, match=f"rcc name at byte {names} is not UTF-16BE"):
        cf.rcc_entries(bytes(data))


def test_rcc_directory_count_past_the_end_is_rejected_before_allocating() -> None:
    data = bytearray(make_rcc({"d/a.txt": b"x"}))
    (tree,) = struct.unpack_from(">I", data, 8)
    struct.pack_into(">I", data, tree + 6, 0x7FFFFFFF)  # root directory: child count
    with pytest.raises(FormatError, match="directory / has 2147483647 entries"):
        cf.rcc_entries(bytes(data))
    struct.pack_into(">II", data, tree + 6, 1, 0x7FFFFFFF)  # a sane count, first child far away
    with pytest.raises(FormatError, match="past the end"):
        cf.rcc_entries(bytes(data))


def noise_jpeg(size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


def test_jpeg_scan_reports_damaged_streams() -> None:
    big, small = noise_jpeg((64, 48)), make_jpeg()
    blob = b"eet" + big[: len(big) // 2] + b"gap" + small + b"\xff\xd8\xff\x00 stray bytes"
    streams, damaged = cf.jpeg_scan(blob)
    assert [s for _, s in streams] == [small] == [s for _, s in cf.jpeg_streams(blob)]
    assert damaged == [(3, len(big) // 2 + 3)]  # up to the next stream; the stray FF D8 FF is not one


def test_enlightenment_counts_a_damaged_largest_stream(tmp_path: Path) -> None:
    folder = tmp_path / "usr/share/enlightenment/data/backgrounds"
    folder.mkdir(parents=True)
    big, small = noise_jpeg((800, 600)), make_jpeg((400, 400))
    (folder / "Hills.edj").write_bytes(b"eet" + big[: len(big) - 100] + small)
    (folder / "Lake.edj").write_bytes(b"eet" + small + b"\x00" + big[:300])
    (folder / "Sky.edj").write_bytes(b"eet" + big[:-2])
    (folder / "Wood.edj").write_bytes(b"eet" + small)
    pkg = Package("enlightenment-data", "1", "e.deb", tmp_path, "")
    skipped: Counter = Counter()
    items = list(corpus_image.image_enlightenment(pkg, skipped))
    # the same 400x400 picture three times: identical files are dropped over the whole corpus
    # (corpus_manifest.drop_duplicates), not per source
    assert [i.rel for i in items] == ["Hills.jpg", "Lake.jpg", "Wood.jpg"]
    assert skipped["largest JPEG stream in .edj damaged (a smaller complete copy used)"] == 1
    assert skipped["damaged smaller JPEG stream in .edj (not used)"] == 1
    assert skipped["only damaged JPEG streams in .edj"] == 1


# --------------------------------------------------------------------------- the build loop


def fake_kind(sources: dict, local: dict | None = None, packages: tuple[str, ...] = ()) -> ModuleType:
    """A corpus kind like corpus_audio (TOP, PACKAGES, LOCAL, SOURCES, ...) that stores bytes."""
    kind = ModuleType("fake_kind")
    kind.TOP, kind.PACKAGES, kind.LOCAL, kind.SOURCES = "files", list(packages), local or {}, sources
    kind.SPLITS, kind.LEFT_OUT, kind.MEASURED = {}, {}, ("size",)
    kind.measure = lambda path: {"size": path.stat().st_size}
    return kind


def text_files(pkg: Package) -> list[Item]:
    """One item per usr/share/fake/*.txt of the package."""
    return [Item(p.name, f"g:{p.stem}", copy_of(p), [p.name]) for p in sorted((pkg.root / "usr/share/fake").glob("*.txt"))]


def test_build_rows_reuses_a_file_only_from_the_same_deb(tmp_path: Path) -> None:
    kind, made = fake_kind({}), []

    def make(dest: Path) -> None:
        made.append(dest.name)
        dest.write_bytes(b"new bytes")

    (tmp_path / "files/p").mkdir(parents=True)
    (tmp_path / "files/p/a.txt").write_bytes(b"old")
    old = {"path": "files/p/a.txt", "deb": "p_1_all.deb", "version": "1", "size": 3,
           **corpus_manifest.file_facts(tmp_path / "files/p/a.txt")}
    for deb, version, written, size in (("p_1_all.deb", "1", [], 3), ("p_2_all.deb", "2", ["a.txt"], 9)):
        made.clear()
        pkg = Package("p", version, deb, tmp_path, "")
        (row,) = fetch_corpus.build_rows(kind, pkg, [Item("a.txt", "g", make, ["a.txt"])], tmp_path,
                                         {old["path"]: old}, Counter())  # fmt: skip
        assert (made, row["deb"], row["version"], row["size"]) == (written, deb, version, size)
    assert (tmp_path / "files/p/a.txt").read_bytes() == b"new bytes"


def test_run_rejects_an_unknown_only_name_and_an_out_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", fake_kind({"a": text_files}, packages=("a", "b")))
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"^fetch_corpus: --only nosuch: no such fake source \(the fake sources: a b\)$"):
        fetch_corpus.run("fake", out, tmp_path / "debs", ["a", "nosuch"])
    assert not out.exists()  # nothing written, no empty manifest
    out.write_text("a file")
    with pytest.raises(SystemExit, match=f"^fetch_corpus: --out {out} is a file, not a folder$"):
        fetch_corpus.run("fake", out, tmp_path / "debs", None)


def test_run_names_the_package_of_a_damaged_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queen_dir = tmp_path / "q/usr/share/scummvm/flight-of-the-amazon-queen"
    queen_dir.mkdir(parents=True)
    (queen_dir / "queen.1c").write_bytes(make_queen([("A.SB", MP3_FRAME), ("B.SB", MP3_FRAME)])[:40])
    queen = Package("flight-of-the-amazon-queen", "1", "q.deb", tmp_path / "q", "")
    kind = fake_kind({queen.name: corpus_audio.audio_queen}, {queen.name: lambda: queen})
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", kind)
    with pytest.raises(SystemExit, match=r"^fetch_corpus: flight-of-the-amazon-queen \(q\.deb\): truncated queen table"):
        fetch_corpus.run("fake", tmp_path / "out", tmp_path / "debs", None)

    rcc = tmp_path / "g/usr/share/gcompris-qt/rcc/farm.rcc"
    rcc.parent.mkdir(parents=True)
    rcc.write_bytes(make_rcc({"farm/resource/cow.jpg": b"x" * 50})[:70])
    gcompris = Package("gcompris-qt-data", "1", "g.deb", tmp_path / "g", "")
    kind = fake_kind({gcompris.name: corpus_image.image_gcompris}, {gcompris.name: lambda: gcompris})
    monkeypatch.setitem(fetch_corpus.KINDS, "image", kind)
    with pytest.raises(SystemExit, match=rf"^fetch_corpus: gcompris-qt-data \(g\.deb\): {rcc}: truncated: rcc"):
        fetch_corpus.run("image", tmp_path / "out", tmp_path / "debs", None)


def test_one_damaged_queen_clip_is_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip without an MP3 frame is that file's skip; the other clips are written and the run goes on."""
    queen_dir = tmp_path / "q/usr/share/scummvm/flight-of-the-amazon-queen"
    queen_dir.mkdir(parents=True)
    (queen_dir / "queen.1c").write_bytes(make_queen([("A.SB", MP3_FRAME), ("B.SB", bytes(64)), ("C.SB", MP3_FRAME * 2)]))
    queen = Package("flight-of-the-amazon-queen", "1", "q.deb", tmp_path / "q", "")
    kind = fake_kind({queen.name: corpus_audio.audio_queen}, {queen.name: lambda: queen})
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", kind)
    summary = fetch_corpus.run("fake", tmp_path / "out", tmp_path / "debs", None)
    rows = [json.loads(line) for line in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["a.mp3", "c.mp3"]
    assert summary["skipped"][queen.name] == {"empty or undecodable: FormatError": 1}


def build_deb(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal .deb (control file and ``files``) built with dpkg-deb."""
    root = folder / f"build-{name}-{version.replace(':', '_')}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                                         "Maintainer: t <t@example.org>\nDescription: test\n")  # fmt: skip
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    deb = folder / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)  # fmt: skip
    return deb


needs_dpkg = pytest.mark.skipif(not (shutil.which("dpkg") and shutil.which("dpkg-deb")), reason="needs dpkg")


@needs_dpkg
def test_version_order_is_debian_order() -> None:
    gt = corpus_debs.version_gt
    assert gt("1.10-1", "1.9-1") and not gt("1.9-1", "1.10-1")
    assert gt("1:0.1-1", "9.9-1") and gt("1.0-1", "1.0~rc1-1") and not gt("1.0-1", "1.0-1")


@needs_dpkg
def test_run_uses_cached_debs_newest_first_and_rewrites_files_of_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached .deb is used without apt (no lists needed), the newest by Debian version (1.10
    after 1.9); a newer .deb's files replace the older ones; disk_bytes counts only the files
    of the manifest (no summary.json, no stale file)."""
    def no_apt(name: str) -> tuple[str, None]:
        raise AssertionError(f"apt asked about {name}")

    monkeypatch.setattr(fetch_corpus, "resolve_package", no_apt)
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", fake_kind({"fakepkg": text_files}, packages=("fakepkg",)))
    debs, out = tmp_path / "debs", tmp_path / "out"
    debs.mkdir()
    build_deb(debs, "fakepkg", "1.9-1", {"usr/share/fake/a.txt": b"from 1.9"})
    build_deb(debs, "fakepkg", "1.10-1", {"usr/share/fake/a.txt": b"from 1.10"})

    def manifest() -> list[dict]:
        return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]

    fetch_corpus.run("fake", out, debs, None)
    assert [(r["version"], r["deb"], r["size"]) for r in manifest()] == [("1.10-1", "fakepkg_1.10-1_all.deb", 9)]
    assert (out / "files/fakepkg/a.txt").read_bytes() == b"from 1.10"

    build_deb(debs, "fakepkg", "1:0.1-1", {"usr/share/fake/a.txt": b"from epoch 1", "usr/share/fake/b.txt": b"b"})
    (out / "files/fakepkg/stale.txt").write_bytes(b"left by an older run" * 100)
    with pytest.raises(SystemExit, match=r"fakepkg: .* was built from version 1\.10-1, the packages folder has "
                                         r"1:0\.1-1 \(1\.10-1 -> 1:0\.1-1\): rerun with --accept-new-versions"):
        fetch_corpus.run("fake", out, debs, None)
    summary = fetch_corpus.run("fake", out, debs, None, accept_new_versions=True)
    assert [(r["path"], r["version"], r["size"]) for r in manifest()] == [
        ("files/fakepkg/a.txt", "1:0.1-1", 12), ("files/fakepkg/b.txt", "1:0.1-1", 1)]
    assert (out / "files/fakepkg/a.txt").read_bytes() == b"from epoch 1"
    assert summary["disk_bytes"] == 12 + 1 + (out / "manifest.jsonl").stat().st_size


def test_missing_packages_folder_is_created_and_said(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    debs = tmp_path / "new/debs"
    corpus_debs.packages_dir(debs)
    assert debs.is_dir()
    assert f"packages folder {debs} did not exist: created it" in capsys.readouterr().err
    corpus_debs.packages_dir(debs)  # already there: nothing said
    assert capsys.readouterr().err == ""
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        corpus_debs.packages_dir(tmp_path / "file")
