"""Media files found by name: every picture format Pillow opens here is an image (never a video suffix it only
identifies), a folder search says what it passed over, and a file reached by a link into its own output is
written there too (``mmtok eval``'s reading once per file is a switch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, features

import mmtok
from mmtok.cli import main
from mmtok.core.errors import UsageError
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.data.codes import CODES_SUFFIX
from mmtok.data.media_files import MEDIA_SUFFIXES, expand_paths, media_kind


def _picture(path: Path, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 40)).save(path, format=fmt)
    return path


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained image tokenizer of 32×32 pictures, saved: quick to encode with."""
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer

    torch.manual_seed(0)
    return str(mmtok.save(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(),
                          tmp_path_factory.mktemp("models") / "small"))


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mmtok: note:")]


# --------------------------------------------------------------------------- 1: the image suffixes


def test_the_image_suffixes_are_a_fixed_list_of_picture_formats() -> None:
    """Common picture formats beyond the first ten (AVIF, JFIF, TGA, QOI, ...), never a sound's or a video's suffix,
    a data format (FITS, PFM) or a document; and the same list whatever plugin registers later."""
    assert isinstance(IMAGE_SUFFIXES, frozenset)
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".jfif", ".tga", ".qoi", ".avif", ".jp2", ".psd", ".ico"} <= IMAGE_SUFFIXES
    assert not {".mpg", ".mpeg", ".h5", ".wmf", ".fits", ".pfm", ".rgb", ".fli", ".eps", ".ps", ".pdf"} & IMAGE_SUFFIXES
    assert not IMAGE_SUFFIXES & (AUDIO_SUFFIXES | VIDEO_SUFFIXES)
    readable = set(Image.registered_extensions())
    assert {".jfif", ".tga", ".qoi", ".pbm"} <= readable  # Pillow reads them here
    if features.check("avif"):
        assert ".avif" in readable


def test_media_kind_takes_a_pillow_picture_and_hints_at_heic() -> None:
    assert [media_kind(Path(n)) for n in ("b.JFIF", "d.tga", "e.qoi")] == ["image"] * 3
    with pytest.raises(UsageError, match=r"^e\.heic: not an image.*pillow-heif"):
        media_kind(Path("e.heic"))
    with pytest.raises(UsageError, match=r"^clip\.ts: not an image, a sound or a video by its extension.*rename them \.m2ts"):
        media_kind(Path("clip.ts"))


# --------------------------------------------------------------------------- 1: a folder search says what it skips


def test_a_folder_search_finds_every_picture_and_says_once_what_it_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "f1"
    _picture(d / "b.jfif", "JPEG"), _picture(d / "c.jpg"), _picture(d / "sub" / "d.tga")
    (d / "e.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (d / "notes.txt").write_text("not a picture")
    (d / ".hidden.txt").write_text("left out quietly")
    (d / "c.jpg.npz").write_bytes(b"")  # a code file of an earlier encode into the same folder: quiet
    pairs = expand_paths([d], tmp_path / "out", MEDIA_SUFFIXES)
    assert [(f.name, o.name) for f, o in pairs] == [("b.jfif", "out"), ("c.jpg", "out"), ("d.tga", "sub")]
    (note,) = _notes(capsys.readouterr().err)
    assert "skipped 2 files of a kind mmtok does not read" in note and "pillow-heif" in note
    assert f"{d / 'e.heic'}, {d / 'notes.txt'}" in note and ".hidden" not in note and ".npz" not in note


def test_many_skipped_files_are_a_few_names_and_a_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("")
    _picture(tmp_path / "a.png")
    assert [f.name for f, _ in expand_paths([tmp_path], tmp_path, MEDIA_SUFFIXES)] == ["a.png"]
    (note,) = _notes(capsys.readouterr().err)
    assert note.endswith(f"{tmp_path / '2.txt'} and 2 more") and "skipped 5 files" in note
    assert "heic" not in note


def test_a_code_file_search_passes_over_media_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _picture(tmp_path / "c.jpg"), _picture(tmp_path / "c.jpg.decoded.png")
    (tmp_path / f"c.jpg{CODES_SUFFIX}").write_bytes(b"")
    assert [f.name for f, _ in expand_paths([tmp_path], tmp_path, frozenset({CODES_SUFFIX}))] == ["c.jpg.npz"]
    assert capsys.readouterr().err == ""


def test_a_folder_encode_writes_every_picture_pillow_reads(small_image: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "f1"
    names = ["b.jfif", "c.jpg", "d.tga"] + (["a.avif"] if features.check("avif") else [])
    for name in names:
        _picture(d / name, "JPEG" if name.endswith(".jfif") else None)
    (d / "e.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    assert main(["encode", str(d), "--out", str(tmp_path / "out"), "--image", small_image]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(n + CODES_SUFFIX for n in names)
    assert "e.heic" in capsys.readouterr().err


# --------------------------------------------------------------------------- 2: a file reached by a link


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """``ds/all/x.png`` and ``ds/train/x.png``, a link to it."""
    _picture(tmp_path / "ds" / "all" / "x.png")
    (tmp_path / "ds" / "train").mkdir()
    (tmp_path / "ds" / "train" / "x.png").symlink_to("../all/x.png")
    return tmp_path / "ds"


def test_a_linked_file_is_kept_for_each_output_and_once_per_file_on_request(
        linked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    pairs = expand_paths([linked], out, MEDIA_SUFFIXES)
    assert pairs == [(linked / "all" / "x.png", out / "all"), (linked / "train" / "x.png", out / "train")]
    assert capsys.readouterr().err == ""
    assert expand_paths([linked], out, MEDIA_SUFFIXES, once_per_file=True) == pairs[:1]
    (note,) = _notes(capsys.readouterr().err)
    assert note.endswith(f"1 file named twice is taken once: {linked / 'train' / 'x.png'} is {linked / 'all' / 'x.png'}")


def test_two_names_into_one_output_are_one_file_and_two_files_are_two(
        linked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = [linked / "all" / "x.png", linked / "train" / "x.png"]
    assert expand_paths(both, tmp_path, MEDIA_SUFFIXES) == [(both[0], tmp_path)]
    assert "1 file named twice" in capsys.readouterr().err
    other = _picture(tmp_path / "other" / "x.png")  # another file of that name: kept, for the collision check
    assert len(expand_paths([both[0], other], tmp_path, MEDIA_SUFFIXES)) == 2


def test_a_folder_encode_writes_a_linked_file_into_each_subfolder(small_image: str, linked: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "dsout"
    assert main(["encode", str(linked), "--out", str(out), "--image", small_image]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.npz")) == ["all/x.png.npz", "train/x.png.npz"]
