"""Rebuilding a corpus with benchmarks/fetch_corpus.py: groups that keep one voice or composer in one
split, per-file licenses, the photo rule for every image source, package versions and file checksums
recorded and checked, --only with a substituted package, a missing Debian tool, and duplicates removed
in one place; a killed build is marked unfinished, and the next run reuses its files and finishes its
deletions. Everything is built here from made-up package trees; no .deb and no network."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import corpus_audio
import corpus_debs
import corpus_image
import corpus_manifest
import fetch_corpus
from corpus_source import Package

from tests.test_corpus_formats import fake_kind, text_files

HELD_OUT = ("validation", "test")


def touch(root: Path, names: list[str], data: bytes = b"OggS") -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def splits_of(groups: dict[str, str], table: dict[str, str]) -> dict[str, str]:
    rows = [{"path": p, "group": g} for p, g in groups.items()]
    fetch_corpus.assign_splits(rows, table)
    return {r["path"]: r["split"] for r in rows}


# --------------------------------------------------------------------------- groups and splits


def test_fillets_lines_at_any_depth_are_grouped_by_speaker_and_kept_out_of_sfx(tmp_path: Path) -> None:
    sub = tmp_path / "usr/share/games/fillets-ng"
    touch(sub, ["sound/share/borejokes/cs/ob-m-klid.ogg", "sound/share/blackjokes/cs/smrt-v-4.ogg",
                "sound/share/borejokes/cs/ob-o-halo.ogg", "sound/share/border/cs/cil-m-hlaska0.ogg",
                "sound/share/border/cs/sp-shout_big_03.ogg", "sound/share/sp-bubles_00.ogg",
                "sound/fdto/cs/agenti-m.ogg", "sound/gods/cs/b1-1.ogg"])
    items = {i.rel: i for i in corpus_audio.audio_fillets(Package("fillets-ng-data-cs", "1", "f.deb", tmp_path, ""))}
    groups = {rel: i.group for rel, i in items.items()}
    assert groups == {"sound/share/borejokes/cs/ob-m-klid.ogg": "fillets:fish-small",
                      "sound/share/blackjokes/cs/smrt-v-4.ogg": "fillets:fish-big",
                      "sound/share/borejokes/cs/ob-o-halo.ogg": "fillets:voice-o",
                      "sound/share/border/cs/cil-m-hlaska0.ogg": "fillets:fish-small",
                      "sound/share/border/cs/sp-shout_big_03.ogg": "fillets:sfx",
                      "sound/share/sp-bubles_00.ogg": "fillets:sfx",
                      "sound/fdto/cs/agenti-m.ogg": "fillets:fish-small",
                      "sound/gods/cs/b1-1.ogg": "fillets:gods"}
    assert items["sound/share/borejokes/cs/ob-m-klid.ogg"].meta == {"kind": "speech", "language": "cs"}
    assert items["sound/share/sp-bubles_00.ogg"].meta == {"kind": "sounds", "language": None}
    splits = splits_of(groups, corpus_audio.SPLITS)
    assert {s for rel, s in splits.items() if "sp-" not in rel and "gods" not in rel} == {"train"}


UFOAI_TRACKS = """AlexFightmare Crystan-Battlescape01 Crystan-Credits David01 David02 David03 David04 David05 Marine01
Marine02 MarineAlienRaid MarineBacktheAttack MarineFireFight MarineIndustrial MarineStrikingIntoTheUnknown
MarineUrbanWarfare PsymongN1 PsymongN2 PsymongN3 PsymongN4 PsymongN5 PsymongO1 PsymongO2 PsymongO3 PsymongO4
PsymongO5 PsymongO6 PsymongR1 PsymongR2 PsymongR3 PsymongR4 PsymongR5 TheThings-Slippycurb alBasrahM azrael1
dawn dbsea dynamictest-battle-41-74sec dynamictest-normal-08-35sec greecei karlmacklin_geoscape returnjourney
space turinItalyM ufo1 ufo2 van_geoscape van_mission van_mission2 van_mission3 van_mission4 van_theme""".split()


def test_ufoai_tracks_are_grouped_by_composer_pinned_to_their_first_split(tmp_path: Path) -> None:
    """0music.pk3's names (ufoai-music 2.5): one group per composer; each composer's split is the first
    (train, validation, test) any of its tracks had when groups were per track, so no track leaves train
    and no held-out track moves to the other held-out split."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for t in UFOAI_TRACKS:
            z.writestr(f"music/{t}.ogg", b"OggS")
    pk3 = tmp_path / "usr/share/games/ufoai/base/0music.pk3"
    pk3.parent.mkdir(parents=True)
    pk3.write_bytes(buf.getvalue())
    groups = {Path(i.rel).stem: i.group for i in corpus_audio.audio_ufoai(Package("ufoai-music", "1", "u.deb", tmp_path, ""))}
    assert {g for t, g in groups.items() if t.startswith(("Marine", "David", "Psymong", "van_", "ufo"))} == {
        "ufoai:Marine", "ufoai:David", "ufoai:Psymong", "ufoai:van", "ufoai:ufo"}
    assert groups["Crystan-Credits"] == "ufoai:Crystan" and groups["dawn"] == "ufoai:dawn"
    new = splits_of(groups, corpus_audio.SPLITS)
    old = {t: fetch_corpus.split_for_group(f"ufoai:{t.split('-')[0]}") for t in UFOAI_TRACKS}
    order = corpus_manifest.SPLIT_ORDER
    for group in set(groups.values()):
        tracks = [t for t, g in groups.items() if g == group]
        assert {new[t] for t in tracks} == {min((old[t] for t in tracks), key=order.index)}, group
    assert not [t for t in UFOAI_TRACKS if old[t] == "train" and new[t] != "train"]
    assert not [t for t in UFOAI_TRACKS if old[t] in HELD_OUT and new[t] not in (old[t], "train")]


# --------------------------------------------------------------------------- licenses and photos


def test_a_webp_gets_the_license_of_the_upstream_jpg_its_copyright_names() -> None:
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nLicense: GPL-3+\n\n"
            "Files: src/activities/explore_world_animals/resource/animals/chameleon.jpg\nLicense: CC-BY-SA-2.0\n\n"
            "Files: src/activities/erase/resource/koala.jpg\nLicense: CC0-1.0\n")
    pkg = Package("gcompris-qt-data", "1", "g.deb", Path("/nonexistent"), text)
    hint = "gcompris/src/activities/explore_world_animals/resource/animals/chameleon.webp"
    assert corpus_debs.package_license(pkg, [hint]) == "CC-BY-SA-2.0"
    assert corpus_debs.package_license(pkg, [hint.replace("chameleon", "koala")]) == "GPL-3+"  # not erase's koala


def noise_png(size: tuple[int, int], grey: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if grey else (size[1], size[0], 3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_scikit_image_samples_pass_the_photo_rule_and_carry_their_own_licenses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, size, grey in (("coffee", (600, 400), False), ("moon", (512, 512), True),
                             ("microaneurysms", (102, 102), True), ("page", (384, 191), True)):
        (data / f"{name}.png").write_bytes(noise_png(size, grey))
    pkg = Package("scikit-image", "0", "pip", tmp_path, "", "scikit-image:skimage/data/_fetchers.py")
    skipped: Counter = Counter()
    items = list(corpus_image.image_skimage(pkg, skipped))
    assert [i.rel for i in items] == ["coffee.png", "moon.png"]
    assert skipped["small (short side < 400 px)"] == 2
    rows = fetch_corpus.build_rows(corpus_image, pkg, items, tmp_path / "out", {}, Counter())
    assert [(r["path"], r["license"]) for r in rows] == [("images/scikit-image/coffee.png", "CC0"),
                                                         ("images/scikit-image/moon.png", "unstated")]


# --------------------------------------------------------------------------- versions, checksums, --only


def local_kind(root: Path, version: list[str], packages: tuple[str, ...] = ()) -> object:
    """A fake corpus kind whose one source "p" is a local package at ``root`` of version ``version[0]``."""
    return fake_kind({"p": text_files}, {"p": lambda: Package("p", version[0], f"p_{version[0]}.deb", root, "",
                                                             "", f"{version[0]:0>64}")}, packages)


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_a_new_package_version_is_refused_unless_accepted_and_then_stale_files_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version, root, out = ["1"], tmp_path / "pkg", tmp_path / "out"
    touch(root, ["usr/share/fake/a.txt"], b"one")
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", local_kind(root, version))
    summary = fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert summary["packages"] == {"p": {"version": "1", "deb": "p_1.deb", "sha256": "0" * 63 + "1"}}
    assert json.loads((out / "summary.json").read_text())["packages"] == summary["packages"]

    version[0] = "2"
    (root / "usr/share/fake/a.txt").unlink()
    touch(root, ["usr/share/fake/b.txt"], b"two")
    with pytest.raises(SystemExit, match=r"^fetch_corpus: p: .*manifest\.jsonl was built from version 1, the packages "
                                         r"folder has 2 \(1 -> 2\): rerun with --accept-new-versions to rebuild it "
                                         r"from 2$"):
        fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert (out / "files/p/a.txt").exists() and not (out / "files/p/b.txt").exists()  # nothing touched
    fetch_corpus.run("fake", out, tmp_path / "debs", None, accept_new_versions=True)
    assert [(r["path"], r["version"]) for r in rows_of(out)] == [("files/p/b.txt", "2")]
    assert not (out / "files/p/a.txt").exists()  # no longer listed: deleted


def test_a_damaged_file_is_made_again_and_disk_bytes_comes_from_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = tmp_path / "pkg", tmp_path / "out"
    touch(root, ["usr/share/fake/a.txt"], b"the bytes")
    touch(root, ["usr/share/fake/b.txt"], b"other")
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", local_kind(root, ["1"]))
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    (row, _) = rows_of(out)
    assert (row["sha256"], row["bytes"]) == (corpus_manifest.file_facts(root / "usr/share/fake/a.txt")["sha256"], 9)
    (out / "files/p/a.txt").write_bytes(b"the bytez")  # same size, damaged
    summary = fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert (out / "files/p/a.txt").read_bytes() == b"the bytes"
    assert summary["disk_bytes"] == 9 + 5 + (out / "manifest.jsonl").stat().st_size


def test_only_with_a_substituted_package_keeps_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--only NAME where this release ships NAME as another package: rows keep the name asked for (source)
    and name the package used (substitute); a rerun keeps the files."""
    root, out = tmp_path / "pkg", tmp_path / "out"
    touch(root, ["usr/share/fake/a.txt"], b"a")
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", fake_kind({"wanted": text_files}, packages=("wanted", "other")))
    monkeypatch.setattr(fetch_corpus, "resolve_package", lambda name: ("real", f"{name} is not in this release; used real"))
    monkeypatch.setattr(fetch_corpus, "fetch_package", lambda name, debs: Package(name, "1", "real_1.deb", root, "", "", "0" * 64))
    for _ in range(2):
        summary = fetch_corpus.run("fake", out, tmp_path / "debs", ["wanted"])
        assert all((out / r["path"]).is_file() for r in rows_of(out))  # no row lost its file
        assert [(r["path"], r["source"], r["substitute"]) for r in rows_of(out)] == [("files/wanted/a.txt", "wanted", "real")]
        assert (out / "files/wanted/a.txt").read_bytes() == b"a"
    assert summary["substitutions"] == {"wanted": "wanted is not in this release; used real"}


def test_kept_rows_never_lose_their_file_to_a_duplicate(tmp_path: Path) -> None:
    touch(tmp_path, ["s/a.txt", "s/b.txt"], b"same")
    old = {"path": "s/a.txt", "split": "train", "source": "s", **corpus_manifest.file_facts(tmp_path / "s/a.txt")}
    rows = [old, {**old}, {**old, "path": "s/b.txt", "split": "test"}]  # a.txt twice: the previous and this run's row
    skipped: dict = {}
    kept = corpus_manifest.drop_duplicates(rows, tmp_path, skipped)
    assert [r["path"] for r in kept] == ["s/a.txt"] and (tmp_path / "s/a.txt").exists()
    assert not (tmp_path / "s/b.txt").exists() and skipped == {"s": {"same content as a file kept (test)": 1}}


def test_a_missing_debian_tool_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-cache, dpkg or dpkg-deb on it
    with pytest.raises(SystemExit, match=r"^fetch_corpus: apt-cache not found: the corpus is built from Debian "):
        corpus_debs.resolve_package("anything")
    with pytest.raises(SystemExit, match=r"^fetch_corpus: dpkg not found"):
        corpus_debs.version_gt("1", "2")
    with pytest.raises(SystemExit, match=r"^fetch_corpus: dpkg-deb not found"):
        corpus_debs.deb_version(tmp_path / "p_1_all.deb")


# --------------------------------------------------------------------------- one de-duplication


def test_identical_pictures_of_one_source_are_kept_in_the_earliest_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identical files are removed in one place, over the whole corpus: the copy kept is the train one,
    even when the handler lists a held-out copy first."""
    root = tmp_path / "pkg"
    touch(root, ["usr/share/backgrounds/a.jpg", "usr/share/backgrounds/b.jpg"], noise_png((400, 400)))
    pkg = Package("lomiri-wallpapers-16.04", "1", "l.deb", root, "")
    kind = fake_kind({pkg.name: corpus_image.image_lomiri}, {pkg.name: lambda: pkg})
    kind.SPLITS = {"lomiri:a": "test", "lomiri:b": "train"}
    monkeypatch.setitem(fetch_corpus.KINDS, "image", kind)
    summary = fetch_corpus.run("image", tmp_path / "out", tmp_path / "debs", None)
    assert [(r["path"], r["split"]) for r in rows_of(tmp_path / "out")] == [
        ("files/lomiri-wallpapers-16.04/b.jpg", "train")]
    assert {k: v for k, v in summary["skipped"][pkg.name].items() if v} == {"same content as a file kept (test)": 1}


# --------------------------------------------------------------------------- a killed build


class Killed(BaseException):
    """What a SIGKILL at that point would have cut short."""


def kill_at(n: int, func):
    """``func`` that raises ``Killed`` on its ``n``-th call, after the call."""
    calls = [0]

    def wrapped(*args, **kwargs):
        result = func(*args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            raise Killed
        return result
    return wrapped


def fake_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> Path:
    root = tmp_path / "pkg"
    for name in names:
        touch(root, [f"usr/share/fake/{name}"], name.encode())
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", local_kind(root, ["1"]))
    return root


def test_a_first_build_killed_while_writing_is_marked_unfinished_and_its_files_are_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_corpus(tmp_path, monkeypatch, ["a.txt", "b.txt", "c.txt"])
    fetch_corpus.run("fake", tmp_path / "whole", tmp_path / "debs", None)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(corpus_manifest, "file_facts", kill_at(3, corpus_manifest.file_facts))
        with pytest.raises(Killed):
            fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert (out / corpus_manifest.UNFINISHED).exists() and not (out / "manifest.jsonl").exists()
    inodes = {n: (out / "files/p" / n).stat().st_ino for n in ("a.txt", "b.txt")}
    stray = out / "files/p/gone.txt.part"  # a file the stopped build was making, of a name no longer made
    stray.write_text("half")
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert not stray.exists()
    assert {n: (out / "files/p" / n).stat().st_ino for n in inodes} == inodes  # not made again
    assert (out / "manifest.jsonl").read_bytes() == (tmp_path / "whole/manifest.jsonl").read_bytes()
    assert not (out / corpus_manifest.UNFINISHED).exists()


def test_a_build_killed_after_its_manifest_still_deletes_the_files_no_longer_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = fake_corpus(tmp_path, monkeypatch, ["a.txt", "b.txt"]), tmp_path / "out"
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    summary = (out / "summary.json").read_bytes()
    (root / "usr/share/fake/b.txt").unlink()
    with monkeypatch.context() as m:
        m.setattr(corpus_manifest, "write_manifest", kill_at(1, corpus_manifest.write_manifest))
        with pytest.raises(Killed):
            fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert (out / corpus_manifest.UNFINISHED).exists() and (out / "summary.json").read_bytes() == summary
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert [r["path"] for r in rows_of(out)] == ["files/p/a.txt"] and not (out / "files/p/b.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == [".build.lock", "files", "manifest.jsonl", "summary.json"]


def test_a_write_of_summary_json_cut_short_leaves_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or a kill) while summary.json is written by a build that changed files: the previous summary
    stays readable, the folder stays marked unfinished, and the next run finishes it."""
    out = tmp_path / "out"
    root = fake_corpus(tmp_path, monkeypatch, ["a.txt"])
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    summary = (out / "summary.json").read_bytes()
    touch(root, ["usr/share/fake/b.txt"], b"b")  # a new file: this build has work
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if "summary.json" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space left"):
            fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert (out / "summary.json").read_bytes() == summary and (out / corpus_manifest.UNFINISHED).exists()
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert sorted(p.name for p in out.iterdir()) == [".build.lock", "files", "manifest.jsonl", "summary.json"]


# --------------------------------------------------------------------------- one build at a time, --only after a kill


def test_a_second_build_of_one_folder_is_refused_while_the_first_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds into one --out would share temp names and delete each other's files: while one runs
    (it holds the lock on OUT/.build.lock), another is refused in one line and touches nothing."""
    fake_corpus(tmp_path, monkeypatch, ["a.txt", "b.txt", "c.txt"])
    out, refused, real = tmp_path / "out", [], corpus_manifest.file_facts

    def second_build_meanwhile(path: Path) -> dict:
        if not refused:
            refused.append(None)
            with pytest.raises(SystemExit) as err:
                fetch_corpus.run("fake", out, tmp_path / "debs", None)
            refused[0] = str(err.value)
        return real(path)
    with monkeypatch.context() as m:
        m.setattr(corpus_manifest, "file_facts", second_build_meanwhile)
        fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert refused == [f"fetch_corpus: a build of {out} is running (process {os.getpid()})"]
    assert [r["path"] for r in rows_of(out)] == ["files/p/a.txt", "files/p/b.txt", "files/p/c.txt"]
    assert all((out / r["path"]).read_bytes() == Path(r["path"]).name.encode() for r in rows_of(out))
    fetch_corpus.run("fake", out, tmp_path / "debs", None)  # the lock went with the first build


def two_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: list[str]) -> dict[str, Path]:
    """A fake kind with local sources p and q (usr/share/fake/*.txt each), both of version ``version[0]``."""
    roots = {n: tmp_path / n for n in ("p", "q")}
    local = {n: (lambda n=n: Package(n, version[0], f"{n}_{version[0]}.deb", roots[n], "", "", f"{version[0]:0>64}"))
             for n in roots}
    monkeypatch.setitem(fetch_corpus.KINDS, "fake", fake_kind({n: text_files for n in roots}, local))
    return roots


def test_an_only_run_after_a_killed_build_keeps_no_row_that_misses_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full build killed after it rewrote p's file, then --only q: p's old row would be kept for p's new file.
    It is refused (rerun with p); a kept row whose file was changed by hand is refused too, naming the file."""
    version, out, debs = ["1"], tmp_path / "out", tmp_path / "debs"
    roots = two_sources(tmp_path, monkeypatch, version)
    touch(roots["p"], ["usr/share/fake/a.txt"], b"one")
    touch(roots["q"], ["usr/share/fake/b.txt"], b"bee")
    fetch_corpus.run("fake", out, debs, None)
    version[0] = "2"
    touch(roots["p"], ["usr/share/fake/a.txt"], b"ONE, version 2")
    touch(roots["q"], ["usr/share/fake/b.txt"], b"BEE v2")
    with monkeypatch.context() as m:
        m.setattr(corpus_manifest, "file_facts", kill_at(2, corpus_manifest.file_facts))  # killed measuring q's file
        with pytest.raises(Killed):
            fetch_corpus.run("fake", out, debs, None, accept_new_versions=True)
    with pytest.raises(SystemExit, match=rf"^fetch_corpus: {out}: a stopped build rewrote files of p: rerun without "
                                         r"--only, or with --only including p$"):
        fetch_corpus.run("fake", out, debs, ["q"], accept_new_versions=True)
    assert (out / corpus_manifest.UNFINISHED).exists()
    fetch_corpus.run("fake", out, debs, ["p", "q"], accept_new_versions=True)
    assert all(corpus_manifest.same_file(out / r["path"], r) for r in rows_of(out))
    assert [r["version"] for r in rows_of(out)] == ["2", "2"]

    (out / "files/p/a.txt").write_bytes(b"changed by hand")
    with pytest.raises(SystemExit, match=rf"^fetch_corpus: {out}/files/p/a\.txt: not the file .*manifest\.jsonl lists "):
        fetch_corpus.run("fake", out, debs, ["q"])
    assert not (out / corpus_manifest.UNFINISHED).exists()


def test_a_build_that_fails_before_changing_anything_leaves_the_corpus_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged archive of q raises in its handler before any file in OUT is written: the corpus is still the
    whole one the last build left (no marker, the trainers read it). A killed build's marker starts with its
    command, which the trainers' refusal quotes."""
    from mmtok.core.corpus_manifest import split_files
    from mmtok.core.errors import CorpusError

    out, debs = tmp_path / "out", tmp_path / "debs"
    roots = two_sources(tmp_path, monkeypatch, ["1"])
    touch(roots["p"], ["usr/share/fake/a.txt"], b"one")
    touch(roots["q"], ["usr/share/fake/b.txt"], b"bee")
    fetch_corpus.run("fake", out, debs, None)

    def damaged(pkg: Package) -> list:
        raise OSError(f"{pkg.deb}: truncated archive")
    with monkeypatch.context() as m:
        m.setitem(fetch_corpus.KINDS["fake"].SOURCES, "q", damaged)
        with pytest.raises(SystemExit, match=r"^fetch_corpus: q \(q_1\.deb\): q_1\.deb: truncated archive$"):
            fetch_corpus.run("fake", out, debs, None)
    assert not (out / corpus_manifest.UNFINISHED).exists()
    assert [f.name for f in split_files(out / "manifest.jsonl", "train", suffixes={".txt"}, media="text")] == [
        "a.txt", "b.txt"]

    (out / "files/p/a.txt").write_bytes(b"damaged")
    with monkeypatch.context() as m:
        m.setattr(corpus_manifest, "file_facts", kill_at(2, corpus_manifest.file_facts))  # q's kept row, then p's new file
        with pytest.raises(Killed):
            fetch_corpus.run("fake", out, debs, ["p"])
    command = fetch_corpus.command_line("fake", out, debs, ["p"])
    assert (out / corpus_manifest.UNFINISHED).read_text().splitlines()[0] == command
    with pytest.raises(CorpusError, match=f"rerun its command `{re.escape(command)}` to finish it"):
        split_files(out / "manifest.jsonl", "train", suffixes={".txt"}, media="text")
    fetch_corpus.run("fake", out, debs, ["p"])
    assert (out / "files/p/a.txt").read_bytes() == b"one"


def test_a_marker_of_an_older_build_without_its_command_keeps_its_listed_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker written before builds kept their command starts with its {"listed": ...} line: those paths are
    still the ones a rerun deletes when the new manifest no longer lists them."""
    fake_corpus(tmp_path, monkeypatch, ["a.txt"])
    out = tmp_path / "out"
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    old = out / "files/p/old.txt"
    old.write_text("dropped by the stopped build's new manifest")
    (out / corpus_manifest.UNFINISHED).write_text(json.dumps({"listed": ["files/p/a.txt", "files/p/old.txt"]}) + "\n")
    fetch_corpus.run("fake", out, tmp_path / "debs", None)
    assert not old.exists() and (out / "files/p/a.txt").exists()
    assert fetch_corpus.command_line("fake", Path("out"), Path("debs")).split()[4] == str(Path("out").resolve())


def test_a_folder_that_cannot_be_locked_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    tmp_path.joinpath("out").mkdir()
    with pytest.raises(SystemExit, match=r"cannot lock .*No locks available.*build the corpus on a local disk"):
        with corpus_manifest.build_lock(tmp_path / "out"):
            pass
