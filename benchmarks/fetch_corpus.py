"""Rebuild the real-data corpora for the audio and image tokenizers from Debian packages.

    python benchmarks/fetch_corpus.py audio --out /work/data/corpus/audio
    python benchmarks/fetch_corpus.py image --out /work/data/corpus/image
    (options: --packages-dir /work/data/corpus/debs, --only PKG [PKG ...], --accept-new-versions)

This module is the driver: the command line, writing and measuring the files and the group -> split
assignment; fetching and unpacking the packages and reading their licenses are in ``corpus_debs.py``. What to
take from each package lives in ``corpus_audio.py`` and ``corpus_image.py`` (one handler per
source, the list of sources and fixed splits), the archive readers in ``corpus_formats.py``,
the manifest and summary in ``corpus_manifest.py``, the files remembered as failing in ``corpus_failures.py``;
tests: ``tests/test_corpus_formats.py``, ``tests/test_corpus_rebuild.py``, ``tests/test_corpus_fetch_fixes.py``
and ``tests/test_corpus_rebuild_fixes.py``.

Each package is fetched with ``apt-get download`` (never installed; into ``.download-PKG/`` inside
the packages folder, the .deb moved out only once whole), unpacked with
``dpkg-deb -x`` next to the .deb folder (``unpacked/``), and its media are written under
``OUT/audio/PKG/...`` or ``OUT/images/PKG/...``. Normal audio files (ogg, mp3, wav, flac,
opus) and images keep their original bytes; clips that only exist inside an archive
(Flight of the Amazon Queen's ``queen.1c``: raw MP3 streams -> .mp3; UFO:AI's ``.pk3`` zip
-> .ogg) are written out as they are stored, and headerless audio (G.722 telephone prompts,
codec2's 8 kHz raw PCM) is decoded to FLAC. Nothing is resampled. The audio sources with MP3 clips or
G.722 prompts need PyAV (``pip install -e ".[video]"``): the decoders the sources built need are checked
before any work; a file that cannot be written or measured is a counted skip, a source left with none is
refused, and an error that is not about the file (a missing module, memory, a full disk) stops the build.

``OUT/manifest.jsonl`` has one row per file: path (relative to OUT), source (the package
asked for; ``substitute`` names the package used when this release has another name),
version, deb, license (short name from ``usr/share/doc/PKG/copyright``: the last DEP-5
``Files`` stanza that covers the file, else the first license named in a free-form file),
copyright (that file), group (speaker, language voice, activity bundle or photo), split,
sha256 and bytes, plus seconds / sample_rate / channels / kind / language for audio and
width / height for images. ``OUT/summary.json`` has totals per source and split, each
package's version, .deb and its sha256, what was skipped and why, package substitutions and
sources left out, and (``failed``) each file that failed for a reason about the file itself, by package
version, path, sha256 of its input and decoder versions: a rerun counts it again without decoding it, until
the decoders change (``corpus_failures.py``).

Splits are by group, never by file: sha256(group) as a fraction gives ~80/10/10
(``split_for_group``), with a fixed override table per kind for sources that have too few
groups or groups mixing speakers. Re-running skips downloads (a .deb already in the packages
folder is used, the newest by Debian version order if there are several; one that dpkg-deb cannot read, or
whose size and sha256 are not what apt lists for its version, is said in one line and downloaded again, once),
unpacking and files already written from the same .deb whose sha256 and size still match the previous
manifest (their measurements are reused; any other file is made and measured in ``OUT/.build.tmp``,
then moved into place), and gives the same splits; a copy the previous build dropped as a
duplicate of a file it kept is not written again, so a rerun with the same inputs changes nothing.
A package whose version (or .deb, at the same version) differs from the one the corpus in OUT
was built from is refused unless ``--accept-new-versions`` is given; files the
new manifest no longer lists are then deleted. One build of OUT runs at a time (it holds a
lock on ``OUT/.build.lock``; a second is refused). ``OUT/build.unfinished.jsonl`` is there
from just before the first file in OUT changes (never, on a rerun that changes nothing) until
the summary is written: a corpus that has it is not a whole one (the build was killed or is running); its first line is that build's
command, and the next run reuses what the killed one wrote and finishes its deletions (an
``--only`` run that leaves out a source whose files it rewrote is refused, and so is one that
keeps a row whose file no longer matches it). A packages folder that does not exist is
created (said on stderr) and filled by ``apt-get download``. Licenses are per file and vary (GPL-2/3, CC-BY(-SA), CC0, BSD, MIT and the Flight
of the Amazon Queen freeware license): check the manifest before redistributing.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_audio
import corpus_image
import corpus_manifest as cm
from common import run_script
from corpus_debs import cached_debs, fetch_package, package_license, resolve_package
from corpus_failures import Failures
from corpus_formats import FormatError
from corpus_source import Item, Package

# Per kind: PACKAGES (apt), LOCAL (other sources), SOURCES (name -> handler), SPLITS (fixed
# group splits), LEFT_OUT, TOP (folder under OUT), MEASURED and measure(path); optionally
# check_decoders(sources) (refuses, before any work, an install that cannot decode those sources' files) and
# decoder_versions() (what a file that failed is remembered with, corpus_failures).
KINDS: dict[str, ModuleType] = {"audio": corpus_audio, "image": corpus_image}


# --------------------------------------------------------------------------- build loop


def reusable(old: dict | None, pkg: Package, dest: Path, measured: tuple[str, ...]) -> bool:
    """Whether the file at ``dest`` can stay: its previous row comes from the same .deb and version, has
    its measurements, and the file still has that row's size and sha256."""
    return (bool(old) and old.get("deb") == pkg.deb and old.get("version") == pkg.version
            and all(k in old for k in measured) and cm.same_file(dest, old))


# Errors that are about the machine or the install, not the file being written: the build stops on them
# instead of counting every file as a skip (a missing decoder, memory, a full or read-only disk).
NOT_ABOUT_THE_FILE = (ImportError, MemoryError)
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


def about_the_file(err: Exception) -> bool:
    """Whether ``err``, raised writing or measuring one file, is about that file (a per-file skip)."""
    return not isinstance(err, NOT_ABOUT_THE_FILE) and not (isinstance(err, OSError) and err.errno in MACHINE_ERRNOS)


def content_facts(item: Item) -> dict | None:
    """sha256 and bytes of what ``item`` writes, when its writer tells them without writing (``content()``,
    see ``corpus_source``); None when it cannot (the file is then written to find out)."""
    content = getattr(item.make, "content", None)
    if content is None:
        return None
    try:
        data = content()
        if isinstance(data, Path):
            return {"sha256": cm.file_sha256(data), "bytes": data.stat().st_size}
    except Exception:  # writing it says what is wrong: a skip, or the error
        return None
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def made_in_scratch(kind: ModuleType, item: Item, out: Path, row: dict, skipped: Counter,
                    failures: Failures | None = None) -> tuple[Path, dict] | None:
    """``item`` written into OUT's scratch folder (``corpus_manifest.SCRATCH``, under ``row``'s path) and measured
    there: that file and its measured fields, or None when it cannot be written or measured (counted in
    ``skipped`` and remembered in ``failures``; an error that is not about the file, ``about_the_file``, is raised).
    A file ``failures`` knows to fail is counted again without being made. Nothing in OUT's corpus changes, so a
    file that fails leaves it as it was."""
    if failures and failures.known_to_fail(item, row, skipped):
        return None
    tmp = out / cm.SCRATCH / row["path"]
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        item.make(tmp)
        return tmp, kind.measure(tmp)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        if not about_the_file(err):
            raise
        reason = f"empty or undecodable: {type(err).__name__}"
        skipped[reason] += 1
        if failures:
            failures.add(item, row, reason, err)
        return None


def place(tmp: Path, dest: Path, row: dict, journal: cm.Journal | None) -> dict:
    """Move a file made in the scratch folder to ``dest`` (``journal`` begun first: OUT changes) and return its
    row with the file's sha256 and bytes, added to ``journal``."""
    if journal:
        journal.begin()
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    row = {**row, **cm.file_facts(dest)}
    if journal:
        journal.add(row)
    return row


def drop_stale(dest: Path, journal: cm.Journal | None) -> None:
    """Delete the file at ``dest`` (one that could not be made again), ``journal`` begun first."""
    if dest.exists():
        if journal:
            journal.begin()
        dest.unlink()


def build_rows(
    kind: ModuleType, pkg: Package, items: list[Item], out: Path, prev: dict, skipped: Counter,
    source: str | None = None, journal: cm.Journal | None = None,
    pending: dict[str, tuple[Item, Path | None]] | None = None, failures: Failures | None = None,
) -> list[dict]:
    """Write every item not yet on disk, measure it, and return its manifest rows.

    ``kind`` is ``corpus_audio`` or ``corpus_image``: its TOP folder, MEASURED fields and
    measure(). ``source`` is the name asked for (default ``pkg.name``): the rows' source and
    folder; a package used in its place is recorded as ``substitute``. A file that cannot be
    written or measured is dropped and counted (an error that is not about the file stops the build:
    ``about_the_file``), and remembered in ``failures``, by which a rerun skips it (``corpus_failures``). A file
    already on disk is kept (with its previous measurements) only when ``reusable``; otherwise it is made and measured in the scratch folder, and ``journal`` is begun (``out``
    marked unfinished) only just before it takes its place, its row added to ``journal``.

    With ``pending`` (a dict), an item whose content (``content_facts``, else the file made in the scratch
    folder) is that of a row of ``prev`` at another path, a copy a previous build dropped as a duplicate, does
    not take a place: its row (sha256 and bytes) is returned and the item put in ``pending``, for
    ``settle_pending`` to write only if no earlier copy is kept after all. So a rerun of a finished build does
    not write and delete its duplicates again.
    """
    source = source or pkg.name
    rows = []
    copies: dict[str, set[str]] = {}
    for old in prev.values() if pending is not None else ():
        if "sha256" in old:
            copies.setdefault(old["sha256"], set()).add(old["path"])
    for item in tqdm(items, desc=source, unit="file", leave=False):
        rel = f"{kind.TOP}/{source}/{item.rel}"
        dest = out / rel
        row = {"path": rel, "source": source, **({"substitute": pkg.name} if pkg.name != source else {}),
               "version": pkg.version, "deb": pkg.deb, "license": package_license(pkg, item.hints),
               "copyright": pkg.copyright, "group": item.group, **item.meta}  # fmt: skip
        old = prev.get(rel)
        if reusable(old, pkg, dest, kind.MEASURED):
            row.update({k: old[k] for k in (*kind.MEASURED, "sha256", "bytes")})
            rows.append(row)
            continue
        facts = content_facts(item) if copies else None
        if facts and copies.get(facts["sha256"], set()) - {rel}:
            rows.append({**row, **facts})
            pending[rel] = (item, None)
            continue
        made = made_in_scratch(kind, item, out, row, skipped, failures)
        if made is None:
            drop_stale(dest, journal)
            continue
        tmp, measured = made
        if copies:
            facts = {"sha256": cm.file_sha256(tmp), "bytes": tmp.stat().st_size}
            if copies.get(facts["sha256"], set()) - {rel}:
                rows.append({**row, **measured, **facts})
                pending[rel] = (item, tmp)
                continue
        rows.append(place(tmp, dest, {**row, **measured}, journal))
    return rows


def settle_pending(kind: ModuleType, rows: list[dict], pending: dict[str, tuple[Item, Path | None]], out: Path,
                   skipped: dict[str, Counter], journal: cm.Journal | None,
                   failures: Failures | None = None) -> list[dict]:
    """``rows`` once the ``pending`` copies (``build_rows``) are settled: one whose content a row that is not
    pending has, at an earlier place in the split order (train, validation, test, then path), stays as it is, for
    ``drop_duplicates`` to count and drop, and is never written; any other is written and measured now (its kept
    copy is gone), or left out when that fails (counted in ``skipped``)."""
    order = lambda r: (cm.SPLIT_ORDER.index(split_of(r["group"], kind.SPLITS)), r["path"])  # noqa: E731
    first: dict[str, tuple] = {}
    for r in rows:
        if r["path"] not in pending and "sha256" in r:
            first[r["sha256"]] = min(first.get(r["sha256"], order(r)), order(r))
    settled = []
    for row in rows:
        if row["path"] not in pending:
            settled.append(row)
            continue
        item, tmp = pending[row["path"]]
        if row["sha256"] in first and first[row["sha256"]] < order(row):
            if tmp:
                tmp.unlink(missing_ok=True)
            settled.append(row)
            continue
        base = {k: v for k, v in row.items() if k not in ("sha256", "bytes", *kind.MEASURED)}
        made = (tmp, {k: row[k] for k in kind.MEASURED}) if tmp else made_in_scratch(
            kind, item, out, row, skipped.setdefault(row["source"], Counter()), failures)
        if made is None:
            drop_stale(out / row["path"], journal)
            continue
        settled.append(place(made[0], out / row["path"], {**base, **made[1]}, journal))
    return settled


# --------------------------------------------------------------------------- splits


def split_for_group(key: str, val: float = 0.1, test: float = 0.1) -> str:
    """Deterministic split of a group: the first 8 bytes of sha256(key) as a fraction in [0, 1)."""
    frac = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if frac < test:
        return "test"
    if frac < test + val:
        return "validation"
    return "train"


def split_of(group: str, overrides: dict[str, str]) -> str:
    """A group's split: the override table (exact group or ``prefix*``) else the hash."""
    split = overrides.get(group)
    if split is None:
        split = next((s for k, s in overrides.items() if k.endswith("*") and group.startswith(k[:-1])), None)
    return split or split_for_group(group)


def assign_splits(rows: list[dict], overrides: dict[str, str]) -> None:
    """Split per group (``split_of``)."""
    for row in rows:
        row["split"] = split_of(row["group"], overrides)


# --------------------------------------------------------------------------- main


def sources_of(kind: str, mod: ModuleType, only: list[str] | None) -> list[str]:
    """The sources of ``kind`` to build: all of them, or those ``--only`` names (an unknown name refused)."""
    wanted = [*mod.PACKAGES, *mod.LOCAL]
    unknown = [p for p in only or [] if p not in wanted]
    if unknown:
        raise SystemExit(f"fetch_corpus: --only {' '.join(unknown)}: no such {kind} source "
                         f"(the {kind} sources: {' '.join(wanted)})")  # fmt: skip
    return [p for p in wanted if p in only] if only else wanted


def out_folder(out: Path, debs: Path) -> None:
    """Check --out and --packages-dir, and create --out."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"fetch_corpus: --out {out} is a file, not a folder")
    if debs.exists() and not debs.is_dir():
        raise SystemExit(f"fetch_corpus: --packages-dir {debs} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"fetch_corpus: --out {out}: cannot create the folder ({err})") from err


def source_package(mod: ModuleType, name: str, debs: Path, substitutions: dict[str, str]) -> Package:
    """The unpacked package of source ``name`` (a pip distribution for LOCAL sources); a nearby
    package name used in its place is noted in ``substitutions``."""
    if name in mod.LOCAL:
        return mod.LOCAL[name]()
    # a .deb already in the packages folder is used without asking apt (no lists needed)
    real, note = (name, None) if cached_debs(name, debs) else resolve_package(name)
    if note:
        substitutions[name] = note
        print(f"fetch_corpus: {note}", file=sys.stderr)
    return fetch_package(real, debs)


def command_line(kind: str, out: Path, debs: Path, only: list[str] | None = None, accept: bool = False) -> str:
    """The command that runs this build (the one that rebuilds the whole corpus without ``only`` and ``accept``)."""
    cmd = ["python", "benchmarks/fetch_corpus.py", kind, "--out", str(Path(out).resolve()), "--packages-dir",
           str(Path(debs).resolve())]  # whole paths: the trainers quote it from wherever they run
    return shlex.join([*cmd, *(["--only", *only] if only else []), *([cm.ACCEPT_FLAG] if accept else [])])


def run(kind: str, out: Path, debs: Path, only: list[str] | None, accept_new_versions: bool = False) -> dict:
    """Fetch, unpack and extract every source of ``kind``; write manifest and summary.

    One build of OUT runs at a time (``corpus_manifest.build_lock``; another is refused). Every package is
    fetched and its version checked against OUT's previous manifest (``corpus_manifest.check_versions``)
    before any file is written; OUT is marked unfinished from just before its first file changes until the
    summary is written (``corpus_manifest.Journal``). The decoders the sources ``wanted`` need are checked first,
    before any work (``check_decoders``, where the kind has one); files are made in OUT's scratch folder, removed
    at the end."""
    mod = KINDS[kind]
    wanted = sources_of(kind, mod, only)
    getattr(mod, "check_decoders", lambda sources: None)(wanted)
    out_folder(out, debs)
    with cm.build_lock(out):
        try:
            return build(kind, out, debs, wanted, only, accept_new_versions)
        finally:
            shutil.rmtree(out / cm.SCRATCH, ignore_errors=True)


def build(kind: str, out: Path, debs: Path, wanted: list[str], only: list[str] | None, accept: bool) -> dict:
    """``run`` once OUT is locked: the sources ``wanted`` (``only``, or all of ``kind``'s) rebuilt, the others'
    rows kept when they still match their files (``corpus_manifest.carried_over``). A source that gave files of
    which none could be written and measured is refused (one line). OUT is marked unfinished only when a file in
    it changes: a rerun of a finished build with the same inputs changes nothing and leaves it unmarked."""
    mod = KINDS[kind]
    prev, prev_summary = cm.load_previous(out)
    journal = cm.start_build(out, prev, command_line(kind, out, debs, only, accept))
    rows = cm.carried_over(out, prev, journal, wanted) if only else []
    substitutions = {k: v for k, v in prev_summary.get("substitutions", {}).items() if k not in wanted}
    pkgs = {name: source_package(mod, name, debs, substitutions) for name in wanted}
    cm.check_versions(out, prev, prev_summary, pkgs, accept)
    skipped: dict[str, Counter] = {}
    pending: dict[str, tuple[Item, Path | None]] = {}
    failures = Failures(prev_summary.get("failed", []), getattr(mod, "decoder_versions", lambda: "")())
    for name, pkg in pkgs.items():
        handler, skips = mod.SOURCES[name], skipped.setdefault(name, Counter())
        try:
            items = list(handler(pkg, skips) if kind == "image" else handler(pkg))
        except (FormatError, OSError) as err:  # a damaged archive or file inside the package
            raise SystemExit(f"fetch_corpus: {pkg.name} ({pkg.deb}): {err}") from err
        got = build_rows(mod, pkg, items, out, {**prev, **journal.written}, skips, name, journal, pending, failures)
        if items and not got:
            why = ", ".join(f"{k}: {v}" for k, v in skips.items() if k.startswith("empty or undecodable"))
            raise SystemExit(f"fetch_corpus: {name} ({pkg.deb}): none of its {len(items)} files could be written "
                             f"and measured ({why}): the corpus would have none of it")
        rows += got
    rows = settle_pending(mod, rows, pending, out, skipped, journal, failures)
    assign_splits(rows, mod.SPLITS)
    rows = cm.drop_duplicates(rows, out, skipped, journal)
    manifest_bytes = cm.write_manifest(out, rows, journal)
    cm.remove_unlisted(out, journal.listed | set(journal.written), rows, journal)
    sources = {r["source"] for r in rows}
    packages = {k: v for k, v in prev_summary.get("packages", {}).items() if k in sources and k not in pkgs}
    failed = failures.rows([f for f in prev_summary.get("failed", []) if f["source"] in sources and f["source"] not in pkgs])
    extra = {
        "packages": dict(sorted({**packages, **{n: cm.package_record(p) for n, p in pkgs.items()}}.items())),
        "left_out": mod.LEFT_OUT,
        "substitutions": substitutions,
        "skipped": {k: dict(v) for k, v in skipped.items() if v},
        **({"failed": failed} if failed else {}),
        "commands": command_line(kind, out, debs),
    }
    summary = cm.summarize(kind, rows, extra, manifest_bytes)
    cm.finish_build(out, summary)
    cm.print_table(summary)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=tuple(KINDS))
    ap.add_argument(
        "--out", type=Path, required=True, help="corpus folder (manifest.jsonl, summary.json)"
    )
    ap.add_argument("--packages-dir", type=Path, default=Path("/work/data/corpus/debs"),
                    help=".deb cache; packages are unpacked in its sibling folder unpacked/")  # fmt: skip
    ap.add_argument("--only", nargs="+", metavar="PKG", help="rebuild only these sources")
    ap.add_argument(cm.ACCEPT_FLAG, action="store_true",
                    help="rebuild sources whose package version differs from the one OUT was built from "
                         "(files no longer listed are deleted)")  # fmt: skip
    args = ap.parse_args()
    run(args.kind, args.out, args.packages_dir, args.only, args.accept_new_versions)


if __name__ == "__main__":
    sys.exit(run_script(main))
