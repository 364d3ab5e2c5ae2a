"""A corpus folder's ``manifest.jsonl`` and ``summary.json``, for ``fetch_corpus.py``.

Reading the previous run's manifest and summary, checking a file on disk against its row
(``sha256`` and ``bytes``) before it is reused, refusing a package whose version changed
since the corpus was built, keeping one row per path and per content, removing the files
a manifest no longer lists, and the totals of ``summary.json``. Both files are replaced
whole (``mmtok.core.files.write_atomic``), the manifest first. One build of a folder runs at
a time (``build_lock``). ``UNFINISHED`` marks a build under way: written just before the
first file in the folder changes and removed once the summary is written, it holds the
build's command line, the paths the manifest held when the build began and then one row per
file written, so a build run after a killed one reuses those files and still deletes what
neither lists any more. A build that changes nothing (a rerun with the same inputs) never
writes it, and leaves a manifest and summary that hold what they would be written with alone.
Nothing here runs on its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus_source import Package

from mmtok.core.files import write_atomic
from mmtok.core.manifest import UNFINISHED_NAME

ACCEPT_FLAG = "--accept-new-versions"
SPLIT_ORDER = ("train", "validation", "test")  # a duplicate is kept in the first of these it is in
UNFINISHED = UNFINISHED_NAME  # present while a build is under way or after one was killed (the trainers refuse it)
LOCK = ".build.lock"  # flock'ed by the build of the folder that is running
SCRATCH = ".build.tmp"  # files are made and measured here before they take their place (removed by each build)


# --------------------------------------------------------------------------- reading and checking


def load_previous(out: Path) -> tuple[dict[str, dict], dict]:
    """The rows of ``out/manifest.jsonl`` by path, and ``out/summary.json`` ({} when absent)."""
    manifest, summary = out / "manifest.jsonl", out / "summary.json"
    try:
        lines = manifest.read_text().splitlines() if manifest.exists() else []
        rows = [json.loads(line) for line in lines if line.strip()]
        return {row["path"]: row for row in rows}, json.loads(summary.read_text()) if summary.exists() else {}
    except json.JSONDecodeError as err:
        raise SystemExit(f"fetch_corpus: {out}: manifest.jsonl or summary.json is not valid JSON ({err}): "
                         "remove the folder to build the corpus again") from err


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``out/.build.lock`` while the block runs (the file stays: the lock, not the
    file, is what counts, and a killed build's lock goes with its process); a build of ``out`` that already holds
    it is refused (one line naming the folder and that build's process id)."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SystemExit(f"fetch_corpus: a build of {out} is running (process {pid})") from None
        except OSError as e:  # some network and FUSE filesystems have no flock
            raise SystemExit(f"fetch_corpus: {out}: cannot lock {out / LOCK} ({e.strerror}): this filesystem does "
                             "not support flock; build the corpus on a local disk") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


class Journal:
    """``out``'s ``UNFINISHED`` marker for one build. Its first line is the command line of the build that wrote it
    (``command``), then the paths the manifest listed when the builds it records began (``listed``), then one row
    per file written (``written``, by path). It is written (:meth:`begin`) just before this build first writes,
    replaces or deletes a file in ``out``, so a build stopped before that leaves the folder as it found it."""

    def __init__(self, out: Path, command: str, written: dict[str, dict], listed: set[str]) -> None:
        self.path, self.command, self.written, self.listed, self.begun = out / UNFINISHED, command, written, listed, False

    def begin(self) -> None:
        """Write the marker (once a build): from now on ``out`` is not a whole corpus until :func:`finish_build`."""
        if self.begun:
            return
        lines = [{"listed": sorted(self.listed)}, *self.written.values()]
        text = self.command + "\n" + "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines)
        write_atomic(self.path, text)
        self.begun = True

    def add(self, row: dict) -> None:
        """Add the row of a file just written (after :meth:`begin`)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def start_build(out: Path, prev: dict[str, dict], command: str) -> Journal:
    """What a killed build left in ``out``: its marker's rows of the files it wrote, by path, and the paths the
    manifest listed when it began (with ``prev``'s), as this build's :class:`Journal` (not yet written). The marker's
    first line (the command) and a line a kill cut short are skipped; temp files of writes a kill cut short and
    the ``SCRATCH`` folder are removed (after a killed build, the ``.part`` files of older builds too)."""
    journal, written, listed = out / UNFINISHED, {}, set(prev)
    for name in ("manifest.jsonl", "summary.json", UNFINISHED):  # temp files of writes a kill cut short
        for tmp in out.glob(f".{name}.tmp-*"):
            tmp.unlink()
    shutil.rmtree(out / SCRATCH, ignore_errors=True)  # files a killed build was making
    if journal.exists():  # a build was stopped: a file it was making when it stopped stays a .part
        for part in out.rglob("*.part"):
            if part.is_file():
                part.unlink()
    for number, line in enumerate(journal.read_text(errors="replace").splitlines() if journal.exists() else []):
        if number == 0 and not line.lstrip().startswith("{"):  # the command (a marker of older builds has none)
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            listed.update(entry.get("listed", []))
            if "path" in entry:
                written[entry["path"]] = entry
    return Journal(out, command, written, listed)


def carried_over(out: Path, prev: dict[str, dict], journal: Journal, wanted: list[str]) -> list[dict]:
    """The rows of ``prev`` (the manifest) of sources an ``--only`` build does not rebuild, kept as they are. Refused
    (one line): a stopped build that rewrote files of such a source (only a build of it can finish those), and a
    row whose file is no longer the one it describes (size and sha256)."""
    stopped = sorted({r["source"] for r in journal.written.values() if r.get("source") not in wanted})
    if stopped:
        raise SystemExit(f"fetch_corpus: {out}: a stopped build rewrote files of {', '.join(stopped)}: rerun without "
                         f"--only, or with --only including {' '.join(stopped)}")
    rows = [r for r in prev.values() if r["source"] not in wanted]
    for row in rows:
        path = out / row["path"]
        if not (same_file(path, row) if "sha256" in row else path.is_file()):
            raise SystemExit(f"fetch_corpus: {path}: not the file {out / 'manifest.jsonl'} lists (missing, or its "
                             f"size or sha256 differ): rerun without --only, or with --only including {row['source']}")
    return rows


def finish_build(out: Path, summary: dict) -> None:
    """Write ``out/summary.json`` whole (left alone when it already holds ``summary``), after the manifest, then
    drop the ``UNFINISHED`` mark."""
    text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    if not unchanged(out / "summary.json", text.encode("utf-8")):
        write_atomic(out / "summary.json", text)
    (out / UNFINISHED).unlink(missing_ok=True)


def unchanged(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds ``data`` already (then it is not written again)."""
    return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """The sha256 of a file, read a MiB at a time (a package may be hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def file_facts(path: Path) -> dict:
    """The manifest's ``sha256`` and ``bytes`` of a written file."""
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def same_file(path: Path, row: dict) -> bool:
    """Whether ``path`` is still the file ``row`` describes: its size, then its sha256, match."""
    if not path.is_file() or "sha256" not in row or path.stat().st_size != row.get("bytes"):
        return False
    return file_facts(path)["sha256"] == row["sha256"]


def check_versions(out: Path, prev: dict[str, dict], prev_summary: dict, pkgs: dict[str, Package],
                   accept: bool) -> None:
    """Refuse (one line) a source whose package version, or .deb bytes at the same version, differ from
    what ``out``'s manifest and summary were built from, unless ``accept`` (``--accept-new-versions``)."""
    if accept:
        return
    recorded = prev_summary.get("packages", {})
    for name, pkg in pkgs.items():
        old = sorted({r["version"] for r in prev.values() if r["source"] == name})
        if old and old != [pkg.version]:
            raise SystemExit(f"fetch_corpus: {name}: {out / 'manifest.jsonl'} was built from version "
                             f"{', '.join(old)}, the packages folder has {pkg.version} ({', '.join(old)} -> "
                             f"{pkg.version}): rerun with {ACCEPT_FLAG} to rebuild it from {pkg.version}")
        was = recorded.get(name, {})
        if was.get("version") == pkg.version and was.get("sha256") not in (None, pkg.deb_sha256):
            raise SystemExit(f"fetch_corpus: {name} {pkg.version}: {pkg.deb} is not the .deb {out} was built "
                             f"from (sha256 {was['sha256'][:12]}... -> {pkg.deb_sha256[:12]}...): rerun with "
                             f"{ACCEPT_FLAG} to rebuild it from this one")


def package_record(pkg: Package) -> dict:
    """What summary.json records of one package: version, .deb file and its sha256."""
    return {"version": pkg.version, "deb": pkg.deb, "sha256": pkg.deb_sha256 or None}


# --------------------------------------------------------------------------- de-duplication


def drop_duplicates(rows: list[dict], out: Path, skipped: dict[str, Counter], journal: Journal | None = None) -> list[dict]:
    """One row per path (a later row, this run's, replaces an earlier one), then one row per content
    (sha256): packages ship the same clip under several names, and a copy in another split would put the
    same sound in train and test. The copy kept is the one in the earliest split (train, validation, test),
    then the first path; the others are counted in their source's skips and their files deleted (``journal`` begun
    first), never a file a kept row uses."""
    by_path = {row["path"]: row for row in rows}
    kept: dict[str, dict] = {}
    dropped = []
    for row in sorted(by_path.values(), key=lambda r: (SPLIT_ORDER.index(r["split"]), r["path"])):
        if "sha256" not in row:  # a row kept from a manifest written before sha256 was recorded
            row.update(file_facts(out / row["path"]))
        if row["sha256"] in kept:
            skipped.setdefault(row["source"], Counter())[f"same content as a file kept ({row['split']})"] += 1
            dropped.append(row)
            continue
        kept[row["sha256"]] = row
    used = {r["path"] for r in kept.values()}
    for row in dropped:
        path = out / row["path"]
        if row["path"] not in used and (path.exists() or path.is_symlink()):
            if journal:
                journal.begin()
            path.unlink()
    return list(kept.values())


def remove_unlisted(out: Path, prev: dict[str, dict] | set[str], rows: list[dict], journal: Journal | None = None) -> int:
    """Delete the files at ``prev``'s paths (what the previous manifest, or a killed build, listed) that the new
    manifest does not list (``journal`` begun first); returns how many."""
    listed, root, n = {r["path"] for r in rows}, out.resolve(), 0
    for path in sorted(set(prev) - listed):
        target = (out / path).resolve()
        if target.is_relative_to(root) and target.is_file():
            if journal:
                journal.begin()
            target.unlink()
            n += 1
    return n


def write_manifest(out: Path, rows: list[dict], journal: Journal | None = None) -> int:
    """Write ``out/manifest.jsonl`` whole (rows sorted by path; ``journal`` begun first), left alone when it
    already holds these rows; returns its size in bytes."""
    rows.sort(key=lambda r: r["path"])
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if not unchanged(out / "manifest.jsonl", text):
        if journal:
            journal.begin()
        write_atomic(out / "manifest.jsonl", text)
    return len(text)


# --------------------------------------------------------------------------- summary


def summarize(kind: str, rows: list[dict], extra: dict, manifest_bytes: int) -> dict:
    """Totals per source x split (minutes or image counts), the notes in ``extra``, and ``disk_bytes``: the
    bytes the manifest's rows list plus manifest.jsonl (``manifest_bytes``)."""
    measure = (lambda r: r["seconds"] / 60) if kind == "audio" else (lambda r: 1)
    unit = "minutes" if kind == "audio" else "images"
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_split: Counter = Counter()
    per_kind: Counter = Counter()
    groups: dict[str, set] = defaultdict(set)
    for r in rows:
        per_source[r["source"]][r["split"]] += measure(r)
        per_source[r["source"]]["files"] += 1
        per_split[r["split"]] += measure(r)
        groups[r["split"]].add(r["group"])
        if kind == "audio":
            per_kind[r["kind"]] += measure(r)
    rnd = lambda c: {k: round(v, 2) for k, v in sorted(c.items())}  # noqa: E731
    return {
        "unit": unit,
        "total": round(sum(per_split.values()), 2),
        "per_split": rnd(per_split),
        "groups_per_split": {k: len(v) for k, v in sorted(groups.items())},
        "per_source": {s: rnd(c) for s, c in sorted(per_source.items())},
        **({"per_kind": rnd(per_kind)} if kind == "audio" else {}),
        "disk_bytes": sum(r["bytes"] for r in rows) + manifest_bytes,
        **extra,
    }


def print_table(summary: dict) -> None:
    """The summary's totals per source and split as a table (minutes to a tenth, images as whole counts)."""
    cell = "{:11.1f}" if summary["unit"] == "minutes" else "{:11.0f}"
    print(
        f"\n{'source':34s} {'files':>6s} "
        + " ".join(f"{s:>11s}" for s in SPLIT_ORDER)
        + f"   ({summary['unit']})"
    )
    for source, c in summary["per_source"].items():
        print(
            f"{source:34s} {int(c['files']):6d} " + " ".join(cell.format(c.get(s, 0)) for s in SPLIT_ORDER)
        )
    print(
        f"{'TOTAL':34s} {'':6s} "
        + " ".join(cell.format(summary["per_split"].get(s, 0)) for s in SPLIT_ORDER)
    )
    if "per_kind" in summary:
        print("by kind:", {k: f"{v / 60:.2f} h" for k, v in summary["per_kind"].items()})
    print(f"disk used under OUT: {summary['disk_bytes'] / 2**20:.0f} MiB")
