"""Debian packages for the corpus builder: found by name in apt's lists, fetched with ``apt-get download``
(never installed; a damaged one, which dpkg-deb cannot read or whose size and sha256 are not what apt lists,
downloaded again once), unpacked with ``dpkg-deb -x``, ordered by Debian version, and the license of each file
read from the package's ``copyright`` file (DEP-5 stanzas, else the first license a free-form file names).

Used by ``fetch_corpus.py``; tests: ``tests/test_corpus_formats.py``, ``tests/test_corpus_rebuild.py``,
``tests/test_corpus_fetch_fixes.py`` and ``tests/test_corpus_rebuild_fixes.py``.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from functools import cmp_to_key
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_manifest as cm
from corpus_source import Package

# --------------------------------------------------------------------------- packages


def tool(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a Debian tool (apt-get, apt-cache, dpkg, dpkg-deb); a missing one is one line naming it."""
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit(f"fetch_corpus: {cmd[0]} not found: the corpus is built from Debian packages with "
                         "apt-get, apt-cache and dpkg-deb (a Debian or Ubuntu system)") from None


def sh(*cmd: str, cwd: Path | None = None) -> str:
    done = tool(*cmd, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"fetch_corpus: {' '.join(cmd)} failed (exit {done.returncode}): "
                         f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def apt_lists_empty() -> bool:
    """Whether apt has no package lists (a fresh system before ``apt-get update``): ``apt-cache policy`` names no
    ``Packages`` file, only dpkg's status."""
    return not any(ln.rstrip().endswith(" Packages") for ln in sh("apt-cache", "policy").splitlines())


def resolve_package(name: str) -> tuple[str, str | None]:
    """The package to fetch for ``name`` and a note when a nearby name had to be used. A name apt does not know
    because its package lists are empty is refused with what to run first (``apt-get update``)."""
    policy = sh("apt-cache", "policy", name)
    if "Candidate:" in policy and "Candidate: (none)" not in policy:
        return name, None
    if apt_lists_empty():
        raise SystemExit(f"fetch_corpus: {name}: unknown to apt, whose package lists look empty (a fresh system): "
                         "run apt-get update first")
    stem = re.sub(r"(-[\d.]+)+$", "", name)
    found = [
        ln.split(" - ")[0] for ln in sh("apt-cache", "search", "--names-only", stem).splitlines()
    ]
    best = difflib.get_close_matches(name, found, n=1, cutoff=0.5)
    if not best:
        known = "apt has no version of it to download" if policy.strip() else "unknown to apt"
        raise SystemExit(f"fetch_corpus: {name}: {known} and no package close to it in this release (if apt's "
                         "package lists are old, run apt-get update first)")
    return best[0], f"{name} is not in this release; used {best[0]}"


def packages_dir(debs: Path) -> None:
    """Make sure the .deb folder exists: it is created (and said on stderr) when missing."""
    if debs.is_dir():
        return
    if debs.exists():
        raise SystemExit(f"fetch_corpus: packages folder {debs} is a file, not a folder")
    debs.mkdir(parents=True)
    print(f"fetch_corpus: packages folder {debs} did not exist: created it; the packages "
          "will be downloaded into it with apt-get download", file=sys.stderr)  # fmt: skip


def cached_debs(name: str, debs: Path) -> list[Path]:
    """The .deb files of package ``name`` already in the packages folder."""
    return sorted(debs.glob(f"{glob_escape(name)}_*.deb")) if debs.is_dir() else []


class DamagedDeb(Exception):
    """A .deb that dpkg-deb cannot read, or whose size or sha256 is not what apt lists for its version."""

    def __init__(self, deb: Path, why: str) -> None:
        super().__init__(f"{deb}: {why}")
        self.deb, self.why = deb, why


def deb_tool(deb: Path, *args: str) -> str:
    """``dpkg-deb ARGS`` on ``deb``; a failure is a :class:`DamagedDeb` (cut short or damaged: ``fetch_package``
    downloads it again)."""
    done = tool("dpkg-deb", *args)
    if done.returncode != 0:
        said = "; ".join(ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip())
        raise DamagedDeb(deb, f"dpkg-deb {args[0]} failed (exit {done.returncode}: {said or 'no message'})")
    return done.stdout


def listed_sizes(name: str, version: str) -> set[tuple[int, str]]:
    """(Size, SHA256) of each record apt's package lists hold for ``name`` at ``version``; none when apt does not
    list that version (old or empty lists, a .deb from elsewhere) or there is no apt-cache."""
    try:
        done = subprocess.run(("apt-cache", "show", f"{name}={version}"), capture_output=True, text=True)
    except FileNotFoundError:
        return set()
    if done.returncode != 0:
        return set()
    return {(int(st["Size"]), st["SHA256"].lower()) for st in dep5_stanzas(done.stdout)
            if st.get("Size", "").isdigit() and "SHA256" in st}


def check_listed(name: str, version: str, deb: Path, sha256: str) -> None:
    """Raise :class:`DamagedDeb` when apt lists ``name`` ``version`` and no record of it has the size and sha256 of
    ``deb`` (whose sha256 is ``sha256``)."""
    listed = listed_sizes(name, version)
    size = deb.stat().st_size
    if listed and (size, sha256) not in listed:
        want_size, want_sha = min(listed)
        raise DamagedDeb(deb, f"{size} bytes, sha256 {sha256[:12]}..., where apt lists {name} {version} as "
                              f"{want_size} bytes, sha256 {want_sha[:12]}...")


def deb_version(deb: Path) -> str:
    return deb_tool(deb, "-f", str(deb), "Version").strip()


def version_gt(a: str, b: str) -> bool:
    """Debian version order (epoch, upstream, revision; ``~`` first), as dpkg compares."""
    done = tool("dpkg", "--compare-versions", a, "gt", b)
    if done.returncode not in (0, 1):
        raise SystemExit(f"fetch_corpus: dpkg --compare-versions {a} gt {b} failed: "
                         f"{done.stderr.strip()}")  # fmt: skip
    return done.returncode == 0


def newest_deb(found: list[Path]) -> tuple[Path, str]:
    """The .deb with the highest Debian version (its control field, not its file name) and
    that version; on equal versions the first file name."""
    versions = {deb: deb_version(deb) for deb in sorted(found)}
    order = cmp_to_key(lambda a, b: 1 if version_gt(a[1], b[1]) else -1 if version_gt(b[1], a[1]) else 0)
    return max(versions.items(), key=order)


DOWNLOADING = ".download-"  # apt-get download NAME runs in DEBS/.download-NAME; the .deb moves to DEBS once whole


def download(name: str, debs: Path) -> list[Path]:
    """``apt-get download name`` in a folder of its own inside ``debs``; the .deb is moved into ``debs`` only once
    apt-get has finished it, so a download cut short (killed, interrupted, failed) leaves no .deb there for a later
    run to take as whole. What such a download left is removed when the next one starts."""
    tmp = debs / f"{DOWNLOADING}{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        sh("apt-get", "download", name, cwd=tmp)
        got = cached_debs(name, tmp)
        if not got:
            raise SystemExit(f"fetch_corpus: {name}: apt-get download left no {name}_*.deb in {debs}")
        for deb in got:
            os.replace(deb, debs / deb.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cached_debs(name, debs)


def unpacked_root(deb: Path) -> Path:
    """Where ``deb`` is unpacked: ``unpacked/`` beside the packages folder, one folder per .deb."""
    return deb.parent.parent / "unpacked" / deb.stem


def fetch_package(name: str, debs: Path) -> Package:
    """apt-get download (skipped if a .deb is there; ``download``), dpkg-deb -x (skipped if done). A damaged .deb
    (``DamagedDeb``: dpkg-deb cannot read it, or apt lists other bytes for its version), such as one an earlier
    download cut short, is said in one line, deleted and downloaded again, once; still damaged, it is refused in
    one line naming it."""
    packages_dir(debs)
    found = cached_debs(name, debs) or download(name, debs)
    try:
        return unpacked_package(name, found)
    except DamagedDeb as bad:
        print(f"fetch_corpus: {bad}: damaged or incomplete (a download cut short?): downloading {name} again",
              file=sys.stderr)  # fmt: skip
        bad.deb.unlink(missing_ok=True)
        shutil.rmtree(unpacked_root(bad.deb), ignore_errors=True)  # what an earlier run unpacked from it
        found = download(name, debs)
    try:
        return unpacked_package(name, found)
    except DamagedDeb as bad:
        raise SystemExit(f"fetch_corpus: {bad}: still damaged or incomplete after downloading {name} again: run "
                         "apt-get update (or use another mirror) and rerun") from None


def unpacked_package(name: str, found: list[Path]) -> Package:
    """The newest of the .deb files ``found`` of package ``name``, checked against apt's lists (``check_listed``)
    and unpacked (unless done); :class:`DamagedDeb` when it is damaged."""
    deb, version = newest_deb(found)
    sha = cm.file_sha256(deb)
    check_listed(name, version, deb, sha)
    root = unpacked_root(deb)
    if not (root / ".unpacked").exists():
        tmp = root.with_name(root.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)  # dpkg-deb -x makes only the last folder
        deb_tool(deb, "-x", str(deb), str(tmp))
        (tmp / ".unpacked").touch()
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    cr = root / "usr/share/doc" / name / "copyright"
    text = cr.read_text(encoding="utf-8", errors="replace") if cr.exists() else ""
    return Package(name, version, deb.name, root, text, f"{name}:/usr/share/doc/{name}/copyright", sha)


# --------------------------------------------------------------------------- Debian copyright


def dep5_stanzas(text: str) -> list[dict[str, str]]:
    """Paragraphs of a machine-readable (DEP-5) copyright file as ``{field: value}``.

    Continuation lines (starting with a space) are joined to their field with newlines.
    """
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip()
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def _pattern_matches(pattern: str, hint: str) -> bool:
    """Whether a DEP-5 ``Files`` pattern covers a hint path.

    Installed paths carry prefixes the upstream tree lacks (``usr/share/...``) and archive
    members lack upstream prefixes (``base/``), so a pattern also matches when it matches
    a trailing part of the hint, or when the hint is a trailing part of a literal pattern.
    """
    pattern, hint = pattern.strip("/"), hint.strip("/")
    return (
        fnmatch.fnmatchcase(hint, pattern)
        or fnmatch.fnmatchcase(hint, "*/" + pattern)
        or fnmatch.fnmatchcase(pattern, "*/" + glob_escape(hint))
    )


def glob_escape(text: str) -> str:
    """``text`` with fnmatch wildcards escaped, so it matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def dep5_license(text: str, hints: list[str]) -> str | None:
    """Short license name that a DEP-5 copyright file gives to a file, or None.

    ``hints`` are paths the file may have upstream (installed path, name inside an
    archive, ...). As in DEP-5, the last matching ``Files`` stanza wins; ``debian/*``
    stanzas are ignored; with no match, the header paragraph's License applies. Only
    the first line of the License field (the short name) is used.
    """
    all_stanzas = dep5_stanzas(text)
    stanzas = [s for s in all_stanzas if "Files" in s and "License" in s]
    if not stanzas:
        return None
    header = all_stanzas[0] if "Files" not in all_stanzas[0] else {}
    best = header.get("License", "").split("\n")[0].strip() or None
    for st in stanzas:
        patterns = st["Files"].split()
        if any(p.startswith("debian/") for p in patterns):
            continue
        if any(_pattern_matches(p, h) for p in patterns for h in hints):
            best = st["License"].splitlines()[0].strip()
    return best


_PROSE_LICENSES = [
    (r"GNU General Public License.{0,200}?version 2 dated June", "GPL-2"),
    (r"GNU General Public License.{0,200}?either version 2.{0,60}?later", "GPL-2+"),
    (r"GNU General Public License.{0,200}?either version 3.{0,60}?later", "GPL-3+"),
    (r"GNU General Public License.{0,200}?version 2", "GPL-2"),
    (r"GNU Lesser General Public License", "LGPL"),
    (r"Creative Commons Attribution.Share.?Alike", "CC-BY-SA"),
    (r"Creative Commons Attribution", "CC-BY"),
    (r"Permission is hereby granted, free of charge", "MIT"),
    (r"public domain", "public-domain"),
]


def copyright_summary(text: str) -> str | None:
    """License of a free-form (pre-DEP-5) copyright file: the first known license phrase.

    Paragraphs that introduce the Debian packaging's own license are skipped.
    """
    body = re.split(r"(?im)^(upstream authors?|copyright)\s*:", text, maxsplit=1)
    scope = body[-1] if len(body) > 1 else text
    flat = " ".join(scope.split())
    hits = []
    for pattern, name in _PROSE_LICENSES:
        m = re.search(pattern, flat, re.IGNORECASE)
        if m:
            hits.append((m.start(), name))
    return min(hits)[1] if hits else None


def license_for(text: str, hints: list[str]) -> str:
    """``dep5_license`` for machine-readable files, else ``copyright_summary``, else unknown."""
    return dep5_license(text, hints) or copyright_summary(text) or "unknown"


RECODED = {".webp": (".jpg", ".jpeg", ".png")}  # a shipped form -> the upstream forms its copyright may name


def package_license(pkg: Package, hints: list[str]) -> str:
    """License of one file of ``pkg``; bare file names are tried too (archive members), and for a
    re-encoded picture (``.webp``) the upstream paths it was made from (``.jpg``, ``.jpeg``, ``.png``;
    whole paths only: a bare upstream name would match a file of that name in another folder)."""
    upstream = [str(Path(h).with_suffix(s)) for h in hints for s in RECODED.get(Path(h).suffix.lower(), ())]
    return license_for(pkg.copyright_text, [*hints, *(Path(h).name for h in hints), *upstream])
