"""benchmarks/fetch_corpus.py on a rerun after something went wrong: a damaged .deb left in the packages folder is
downloaded again once (and named when it is still damaged), the decoders checked before any work are only those
the sources asked for need, and a file no decoder can read is remembered in summary.json, so that a rerun counts
it again without decoding it (until the decoders change). The Debian tools are small scripts on PATH here:
nothing is downloaded."""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import corpus_audio
import corpus_debs
import corpus_failures
import fetch_corpus
from corpus_source import Item, Package, copy_of

from tests.test_corpus_fetch_fixes import FAKE_DPKG_DEB, tools
from tests.test_corpus_formats import fake_kind

# dpkg-deb as in FAKE_DPKG_DEB, but -x leaves the .deb's bytes as the package's copyright file: which .deb was
# unpacked can be read off the package
UNPACKING_DPKG_DEB = FAKE_DPKG_DEB.replace('mkdir -p "$3/usr/share/doc/p" ;;',
                                           'mkdir -p "$3/usr/share/doc/q" && cp "$2" "$3/usr/share/doc/q/copyright" ;;')
WHOLE = b"a whole deb"


def apt_get(tmp_path: Path, data: bytes) -> str:
    """An ``apt-get download NAME`` that writes ``data`` as NAME_1.0_all.deb and notes each call."""
    (tmp_path / "deb.bytes").write_bytes(data)
    return f'echo "$2" >> "{tmp_path}/downloads"; cp "{tmp_path}/deb.bytes" "$2_1.0_all.deb"\n'


def downloads(tmp_path: Path) -> list[str]:
    log = tmp_path / "downloads"
    return log.read_text().split() if log.exists() else []


# --------------------------------------------------------------------------- a damaged .deb


def test_a_damaged_deb_in_the_packages_folder_is_downloaded_again_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "q_1.0_all.deb").write_text("half a deb")  # an earlier download cut short
    tools(tmp_path, monkeypatch, dpkg_deb=UNPACKING_DPKG_DEB, apt_get=apt_get(tmp_path, WHOLE))
    pkg = corpus_debs.fetch_package("q", debs)
    assert (pkg.deb, pkg.version, pkg.copyright_text) == ("q_1.0_all.deb", "1.0", WHOLE.decode())
    assert downloads(tmp_path) == ["q"] and (debs / "q_1.0_all.deb").read_bytes() == WHOLE
    err = capsys.readouterr().err
    assert err == (f"fetch_corpus: {debs}/q_1.0_all.deb: dpkg-deb -f failed (exit 2: dpkg-deb: error: unexpected end "
                   f"of file in archive member header in {debs}/q_1.0_all.deb): damaged or incomplete (a download "
                   "cut short?): downloading q again\n")

    (debs / "q_1.0_all.deb").write_text("half a deb")
    tools(tmp_path, monkeypatch, apt_get=apt_get(tmp_path, b"half a deb again"))  # the mirror's copy is cut too
    with pytest.raises(SystemExit, match=rf"^fetch_corpus: {debs}/q_1\.0_all\.deb: dpkg-deb -f failed \(exit 2: .*\): "
                                         r"still damaged or incomplete after downloading q again: run apt-get update "
                                         r"\(or use another mirror\) and rerun$"):
        corpus_debs.fetch_package("q", debs)
    assert downloads(tmp_path) == ["q", "q"]  # once, not in a loop


def test_a_deb_whose_size_or_sha256_is_not_what_apt_lists_is_downloaded_again_and_unpacked_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    debs = tmp_path / "debs"
    record = f"Package: q\nVersion: 1.0\nSize: {len(WHOLE)}\nSHA256: {hashlib.sha256(WHOLE).hexdigest()}\n"
    tools(tmp_path, monkeypatch, dpkg_deb=UNPACKING_DPKG_DEB, apt_get=apt_get(tmp_path, WHOLE),
          apt_cache=f'[ "$1 $2" = "show q=1.0" ] && printf "{record}" && exit 0\nexit 100\n')
    assert corpus_debs.fetch_package("q", debs).copyright_text == WHOLE.decode()
    assert downloads(tmp_path) == ["q"] and capsys.readouterr().err.count("\n") == 1  # the folder was created

    (debs / "q_1.0_all.deb").write_bytes(b"a whole dEb")  # readable, unpacked, yet not the bytes apt lists
    (debs.parent / "unpacked/q_1.0_all/usr/share/doc/q/copyright").write_bytes(b"a whole dEb")
    pkg = corpus_debs.fetch_package("q", debs)
    assert (pkg.copyright_text, pkg.deb_sha256) == (WHOLE.decode(), hashlib.sha256(WHOLE).hexdigest())
    assert downloads(tmp_path) == ["q", "q"]
    assert capsys.readouterr().err == (
        f"fetch_corpus: {debs}/q_1.0_all.deb: 11 bytes, sha256 {hashlib.sha256(b'a whole dEb').hexdigest()[:12]}..., "
        f"where apt lists q 1.0 as 11 bytes, sha256 {hashlib.sha256(WHOLE).hexdigest()[:12]}...: damaged or "
        "incomplete (a download cut short?): downloading q again\n")


# --------------------------------------------------------------------------- decoders of the sources asked for


def test_only_the_decoders_of_the_sources_asked_for_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import av

    monkeypatch.setattr(av, "formats_available", {f for f in av.formats_available if f != "g722"})
    corpus_audio.check_decoders(["flight-of-the-amazon-queen", "codec2-examples"])  # MP3 clips, raw PCM: no G.722
    with pytest.raises(SystemExit, match=r"^fetch_corpus audio: PyAV .* was built without the g722 format of FFmpeg"):
        corpus_audio.check_decoders(["asterisk-core-sounds-ru-g722"])
    with pytest.raises(SystemExit, match=r"without the g722 format"):
        corpus_audio.check_decoders()  # every source

    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    corpus_audio.check_decoders(["codec2-examples", "sonic-pi-samples"])
    with pytest.raises(SystemExit, match=r"^fetch_corpus audio: PyAV is not installed \(.*\): it measures the MP3 "
                                         r"clips; install it with pip install -e \"\.\[video\]\"$"):
        corpus_audio.check_decoders(["flight-of-the-amazon-queen"])

    # the build of a source that needs no PyAV runs without it
    root = tmp_path / "codec2"
    (root / "usr/share/codec2/raw").mkdir(parents=True)
    tone = (np.sin(np.arange(8000) / 5) * 8000).astype("<i2")
    sf.write(root / "usr/share/codec2/hts1a.wav", tone, 8000)
    tone.tofile(root / "usr/share/codec2/raw/kristoff.raw")
    monkeypatch.setattr(fetch_corpus, "source_package",
                        lambda mod, name, debs, subs: Package(name, "1", "codec2_1.deb", root, "", "", "1" * 64))
    summary = fetch_corpus.run("audio", tmp_path / "out", tmp_path / "debs", ["codec2-examples"])
    assert summary["per_source"]["codec2-examples"]["files"] == 2


# --------------------------------------------------------------------------- files no decoder can read


def counted_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoders: list[str]) -> list[str]:
    """A fake kind whose source p has a.txt, b.txt (the same bytes: b is dropped) and bad.txt, whose measuring
    fails; the names of the files measured go in the returned list, ``decoders[0]`` is its decoders' version."""
    root, measured = tmp_path / "pkg", []
    (root / "usr/share/fake").mkdir(parents=True)
    for name, data in (("a.txt", b"same"), ("b.txt", b"same"), ("bad.txt", b"cannot be read")):
        (root / "usr/share/fake" / name).write_bytes(data)

    def measure(path: Path) -> dict:
        measured.append(path.name)
        if path.read_bytes().startswith(b"cannot"):
            raise ValueError(f"{path.name}: no frames")
        return {"size": path.stat().st_size}

    def handler(pkg: Package) -> list[Item]:
        return [Item(p.name, f"g:{p.stem}", copy_of(p), [p.name]) for p in sorted((pkg.root / "usr/share/fake").iterdir())]

    kind = fake_kind({"p": handler}, {"p": lambda: Package("p", "1", "p_1.deb", root, "", "", "1" * 64)})
    kind.SPLITS, kind.measure, kind.decoder_versions = {"g:a": "train", "g:b": "train"}, measure, lambda: decoders[0]
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", kind)
    return measured


def test_a_file_no_decoder_can_read_is_remembered_and_not_decoded_again_until_the_decoders_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, debs, decoders = tmp_path / "out", tmp_path / "debs", ["PyAV 1"]
    measured = counted_kind(tmp_path, monkeypatch, decoders)
    first = fetch_corpus.run("fake", out, debs, None)
    assert sorted(measured) == ["a.txt", "b.txt", "bad.txt"]
    assert first["skipped"] == {"p": {"empty or undecodable: ValueError": 1, "same content as a file kept (train)": 1}}
    bad = hashlib.sha256(b"cannot be read").hexdigest()
    assert first["failed"] == [{"path": "files/p/bad.txt", "source": "p", "version": "1", "input_sha256": bad,
                                "reason": "empty or undecodable: ValueError", "error": "ValueError: bad.txt: no frames",
                                "decoders": "PyAV 1"}]
    summary_json = (out / "summary.json").read_bytes()

    measured.clear()
    assert fetch_corpus.run("fake", out, debs, None) == first  # the same count, the file not decoded again
    assert measured == [] and (out / "summary.json").read_bytes() == summary_json

    decoders[0] = "PyAV 2"  # other decoders may read it: tried again
    assert fetch_corpus.run("fake", out, debs, None)["failed"][0]["decoders"] == "PyAV 2"
    assert measured == ["bad.txt"]

    measured.clear()
    (tmp_path / "pkg/usr/share/fake/bad.txt").write_bytes(b"cannot be read either")  # another input at that path
    assert fetch_corpus.run("fake", out, debs, None)["failed"][0]["input_sha256"] != bad
    assert measured == ["bad.txt"]

    measured.clear()
    (tmp_path / "pkg/usr/share/fake/bad.txt").write_bytes(b"readable now")
    summary = fetch_corpus.run("fake", out, debs, None)
    assert measured == ["bad.txt"] and "failed" not in summary
    assert summary["skipped"] == {"p": {"same content as a file kept (train)": 1}}


def test_an_undecodable_g722_prompt_is_remembered_and_a_disk_error_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "asterisk"
    voice = root / "usr/share/asterisk/sounds/ru_RU_male_IvrvoiceRU"
    voice.mkdir(parents=True)
    (voice / "hello.g722").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (voice / "empty.g722").write_bytes(b"")  # no frame to decode
    name = "asterisk-core-sounds-ru-g722"
    monkeypatch.setattr(fetch_corpus, "source_package",
                        lambda mod, name, debs, subs: Package(name, "1", "a_1.deb", root, "", "", "1" * 64))
    decoded: list[str] = []
    real = corpus_audio.FlacFromG722.__call__
    monkeypatch.setattr(corpus_audio.FlacFromG722, "__call__", lambda self, dest: decoded.append(self.src.name)
                        or real(self, dest))  # fmt: skip
    first = fetch_corpus.run("audio", tmp_path / "out", tmp_path / "debs", [name])
    assert sorted(decoded) == ["empty.g722", "hello.g722"] and first["per_source"][name]["files"] == 1
    assert [(f["path"], f["reason"]) for f in first["failed"]] == [
        (f"audio/{name}/ru_RU_male_IvrvoiceRU/empty.flac", "empty or undecodable: ValueError")]
    assert first["failed"][0]["decoders"] == corpus_audio.decoder_versions()
    decoded.clear()
    assert fetch_corpus.run("audio", tmp_path / "out", tmp_path / "debs", [name]) == first and decoded == []

    # an error reading or writing the disk may not happen again: counted, never remembered
    kind, pkg = fake_kind({}), Package("p", "1", "p_1.deb", tmp_path, "")

    def unreadable(path: Path) -> dict:
        raise PermissionError(13, "Permission denied", str(path))

    kind.measure = unreadable
    failures, skipped = corpus_failures.Failures([], "PyAV 1"), Counter()
    item = Item("hello.g722", "g", copy_of(voice / "hello.g722"), [])
    assert fetch_corpus.build_rows(kind, pkg, [item], tmp_path / "o", {}, skipped, failures=failures) == []
    assert skipped == {"empty or undecodable: PermissionError": 1} and failures.rows([]) == []
