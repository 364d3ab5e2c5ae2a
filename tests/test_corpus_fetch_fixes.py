"""benchmarks/fetch_corpus.py on what goes wrong around a build: a missing decoder refused before any work (and
an error that is not about one file never counted as that file's skip), a download cut short never taken for a
whole .deb, a rerun of a finished build that changes nothing (its dropped duplicates not written again, the
corpus never marked unfinished), and apt's empty package lists told apart from a missing package. The Debian
tools are small scripts on PATH here: nothing is downloaded."""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import corpus_debs
import corpus_image
import corpus_manifest
import corpus_source
import fetch_corpus
from corpus_source import Item, Package

from tests.test_corpus_formats import fake_kind, text_files
from tests.test_corpus_rebuild import Killed, rows_of, touch

ROOT = Path(__file__).resolve().parents[1]


def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **scripts: str) -> None:
    """Shell scripts named by the keywords (``apt_get`` -> apt-get) put first on PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_ / name.replace("_", "-")
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")


# --------------------------------------------------------------------------- decoders


def test_the_audio_build_without_pyav_is_refused_before_any_work_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PyAV every MP3 clip and G.722 prompt would fail one at a time, each a silent skip."""
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError

    def no_work(*args: object) -> None:
        raise AssertionError("a package was fetched before the decoders were checked")

    monkeypatch.setattr(fetch_corpus, "source_package", no_work)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r'^fetch_corpus audio: PyAV is not installed \(.*\): it decodes the G\.722 '
                                         r'telephone prompts and measures the MP3 clips; install it with '
                                         r'pip install -e "\.\[video\]"$'):
        fetch_corpus.run("audio", out, tmp_path / "debs", None)
    assert not out.exists()
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("av") for r in extras["video"])


def test_an_error_about_the_machine_is_no_file_skip_and_a_source_with_no_file_left_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, pkg = fake_kind({}), Package("p", "1", "p_1_all.deb", tmp_path, "")

    def raising(err: Exception):
        def make(dest: Path) -> None:
            raise err
        return make

    for err in (ModuleNotFoundError("No module named 'av'"), MemoryError(),
                OSError(errno.ENOSPC, "No space left on device")):
        with pytest.raises(type(err)):
            fetch_corpus.build_rows(kind, pkg, [Item("a.mp3", "g", raising(err), [])], tmp_path / "out", {}, Counter())
    skipped: Counter = Counter()
    assert fetch_corpus.build_rows(kind, pkg, [Item("a.mp3", "g", raising(ValueError("no frames")), [])],
                                   tmp_path / "out", {}, skipped) == []
    assert skipped == {"empty or undecodable: ValueError": 1}

    def broken(pkg: Package) -> list[Item]:
        return [Item(f"{n}.mp3", "g", raising(ValueError("no frames")), []) for n in "ab"]

    monkeypatch.setitem(fetch_corpus.KINDS, "fake", fake_kind({"p": broken}, {"p": lambda: pkg}))
    with pytest.raises(SystemExit, match=r"^fetch_corpus: p \(p_1_all\.deb\): none of its 2 files could be written "
                                         r"and measured \(empty or undecodable: ValueError: 2\)"):
        fetch_corpus.run("fake", tmp_path / "out", tmp_path / "debs", None)
    assert not (tmp_path / "out/manifest.jsonl").exists()


# --------------------------------------------------------------------------- downloads


FAKE_DPKG_DEB = """case "$1" in
  -f) grep -q whole "$2" || { echo "dpkg-deb: error: unexpected end of file in archive member header in $2" >&2; exit 2; }
      echo 1.0 ;;
  -x) grep -q whole "$2" || { echo "tar: Unexpected EOF in archive" >&2; exit 2; }
      mkdir -p "$3/usr/share/doc/p" ;;
esac
"""


def test_a_download_cut_short_leaves_no_deb_and_a_damaged_one_is_named_to_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debs = tmp_path / "debs"
    tools(tmp_path, monkeypatch, dpkg_deb=FAKE_DPKG_DEB,
          apt_get='printf "half a deb" > "$2_1.0_all.deb"; echo "E: Connection timed out" >&2; exit 100\n')
    with pytest.raises(SystemExit, match=r"^fetch_corpus: apt-get download p failed \(exit 100\): E: Connection"):
        corpus_debs.fetch_package("p", debs)
    assert sorted(p.name for p in debs.iterdir()) == []  # nothing a later run would take as whole

    (debs / f"{corpus_debs.DOWNLOADING}p").mkdir()  # what a killed download left
    (debs / f"{corpus_debs.DOWNLOADING}p/p_1.0_all.deb").write_text("half a deb")
    tools(tmp_path, monkeypatch, apt_get='printf "a whole deb" > "$2_1.0_all.deb"\n')
    pkg = corpus_debs.fetch_package("p", debs)
    assert (pkg.deb, pkg.version, sorted(p.name for p in debs.iterdir())) == ("p_1.0_all.deb", "1.0", ["p_1.0_all.deb"])
    assert (debs / "p_1.0_all.deb").read_text() == "a whole deb" and (pkg.root / ".unpacked").exists()

    (debs / "q_1.0_all.deb").write_text("half a deb")  # cut short by a build without the download folder
    tools(tmp_path, monkeypatch, apt_get='printf "half a deb" > "$2_1.0_all.deb"\n')  # and so is its download again
    with pytest.raises(SystemExit, match=rf"^fetch_corpus: {debs}/q_1\.0_all\.deb: dpkg-deb -f failed \(exit 2: "
                                         r"dpkg-deb: error: unexpected end of file.*\): still damaged or incomplete "
                                         r"after downloading q again: run apt-get update \(or use another mirror\) and "
                                         r"rerun$"):
        corpus_debs.fetch_package("q", debs)


# --------------------------------------------------------------------------- apt's lists


def test_empty_apt_lists_say_run_apt_get_update_and_a_substitution_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    status = r"printf 'Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n'"
    tools(tmp_path, monkeypatch, apt_cache=f'[ "$1" = policy ] && [ -z "$2" ] && {status}\nexit 0\n')
    with pytest.raises(SystemExit, match=r"^fetch_corpus: lomiri-wallpapers-22\.04: unknown to apt, whose package "
                                         r"lists look empty \(a fresh system\): run apt-get update first$"):
        corpus_debs.resolve_package("lomiri-wallpapers-22.04")

    lists = r"printf ' 500 http://deb.debian.org/debian bookworm/main amd64 Packages\n'"
    search = r"printf 'lomiri-wallpapers-16.04 - 16.04\nlomiri-wallpapers-20.04 - 20.04\n'"
    tools(tmp_path, monkeypatch, apt_cache=f'[ "$1" = policy ] && [ -z "$2" ] && {status} && {lists}\n'
                                           f'[ "$1" = search ] && {search}\nexit 0\n')
    monkeypatch.setattr(fetch_corpus, "fetch_package", lambda name, debs: Package(name, "1", "x.deb", tmp_path, ""))
    subs: dict[str, str] = {}
    capsys.readouterr()
    pkg = fetch_corpus.source_package(corpus_image, "lomiri-wallpapers-22.04", tmp_path / "debs", subs)
    note = "lomiri-wallpapers-22.04 is not in this release; used lomiri-wallpapers-20.04"
    assert (pkg.name, subs, capsys.readouterr().err) == ("lomiri-wallpapers-20.04", {"lomiri-wallpapers-22.04": note},
                                                        f"fetch_corpus: {note}\n")
    with pytest.raises(SystemExit, match=r"^fetch_corpus: nothing-like-it: unknown to apt and no package close to it "
                                         r"in this release \(if apt's package lists are old, run apt-get update first\)$"):
        corpus_debs.resolve_package("nothing-like-it")


# --------------------------------------------------------------------------- a rerun that changes nothing


def copies_and_a_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake kind: local package p with a.txt and b.txt (the same bytes: b is dropped), c.txt, and bad.txt
    that cannot be made (a skip)."""
    root = tmp_path / "pkg"
    touch(root, ["usr/share/fake/a.txt", "usr/share/fake/b.txt"], b"same")
    touch(root, ["usr/share/fake/c.txt"], b"other")

    def cannot(dest: Path) -> None:
        raise ValueError("no frames")

    def handler(pkg: Package) -> list[Item]:
        return [*text_files(pkg), Item("bad.txt", "g:bad", cannot, [])]

    kind = fake_kind({"p": handler}, {"p": lambda: Package("p", "1", "p_1.deb", root, "", "", "1" * 64)})
    kind.SPLITS = {"g:a": "train", "g:b": "train"}
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", kind)
    return root


def test_a_rerun_of_a_finished_build_writes_nothing_and_never_marks_it_unfinished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, debs = tmp_path / "out", tmp_path / "debs"
    root = copies_and_a_bad_file(tmp_path, monkeypatch)
    first = fetch_corpus.run("fake", out, debs, None)
    assert [r["path"] for r in rows_of(out)] == ["files/p/a.txt", "files/p/c.txt"]
    assert first["skipped"] == {"p": {"empty or undecodable: ValueError": 1, "same content as a file kept (train)": 1}}
    files = {n: ((out / n).read_bytes(), (out / n).stat().st_mtime_ns) for n in ("manifest.jsonl", "summary.json")}

    copied: list[str] = []
    real_copy = corpus_source.shutil.copyfile
    with monkeypatch.context() as m:
        m.setattr(corpus_source.shutil, "copyfile", lambda src, dest: copied.append(Path(dest).name) or real_copy(src, dest))
        m.setattr(corpus_manifest.Journal, "begin", lambda self: pytest.fail("a rerun marked the corpus unfinished"))
        assert fetch_corpus.run("fake", out, debs, None) == first
        m.setattr(corpus_manifest, "finish_build", lambda out, summary: (_ for _ in ()).throw(Killed))
        with pytest.raises(Killed):  # a rerun killed at its end
            fetch_corpus.run("fake", out, debs, None)
    assert copied == []  # b.txt, a copy of a.txt, is not written and deleted again
    assert {n: ((out / n).read_bytes(), (out / n).stat().st_mtime_ns) for n in files} == files
    assert sorted(p.name for p in out.iterdir()) == [".build.lock", "files", "manifest.jsonl", "summary.json"]
    assert sorted(p.name for p in (out / "files/p").iterdir()) == ["a.txt", "c.txt"]

    (root / "usr/share/fake/a.txt").unlink()  # the kept copy goes: its copy is written now
    fetch_corpus.run("fake", out, debs, None)
    assert [r["path"] for r in rows_of(out)] == ["files/p/b.txt", "files/p/c.txt"]
    assert (out / "files/p/b.txt").read_bytes() == b"same" and not (out / "files/p/a.txt").exists()
