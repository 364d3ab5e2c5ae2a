"""Rebuild the real-data corpora for the audio and image tokenizers from Debian packages.

    python benchmarks/fetch_corpus.py audio --out /work/data/corpus/audio
    python benchmarks/fetch_corpus.py image --out /work/data/corpus/image
    (options: --packages-dir /work/data/corpus/debs, --only PKG [PKG ...])

This module is the driver: the command line, fetching and unpacking the packages, reading
their licenses, writing and measuring the files, the group -> split assignment and the
manifest and summary. What to take from each package lives in ``corpus_audio.py`` and
``corpus_image.py`` (one handler per source, the list of sources and fixed splits), the
archive readers in ``corpus_formats.py``; tests: ``tests/test_corpus_formats.py``.

Each package is fetched with ``apt-get download`` (never installed), unpacked with
``dpkg-deb -x`` next to the .deb folder (``unpacked/``), and its media are written under
``OUT/audio/PKG/...`` or ``OUT/images/PKG/...``. Normal audio files (ogg, mp3, wav, flac,
opus) and images keep their original bytes; clips that only exist inside an archive
(Flight of the Amazon Queen's ``queen.1c``: raw MP3 streams -> .mp3; UFO:AI's ``.pk3`` zip
-> .ogg) are written out as they are stored, and headerless audio (G.722 telephone prompts,
codec2's 8 kHz raw PCM) is decoded to FLAC. Nothing is resampled.

``OUT/manifest.jsonl`` has one row per file: path (relative to OUT), source (package),
version, license (short name from ``usr/share/doc/PKG/copyright``: the last DEP-5 ``Files``
stanza that covers the file, else the first license named in a free-form file), copyright
(that file), group (speaker, language voice, activity bundle or photo) and split, plus
seconds / sample_rate / channels / kind / language for audio and width / height for images.
``OUT/summary.json`` has totals per source and split, what was skipped and why, package
substitutions and sources left out.

Splits are by group, never by file: sha256(group) as a fraction gives ~80/10/10
(``split_for_group``), with a fixed override table per kind for sources that have too few
groups or groups mixing speakers. Re-running skips downloads (a .deb already in the packages
folder is used as it is, the newest by Debian version order if there are several), unpacking
and files already written from the same .deb (their measurements are reused from the
previous manifest; a file from another .deb or version is written again), and gives the same
splits. A packages folder that does not exist is created (said on stderr) and filled by
``apt-get download``. Licenses are per file and vary (GPL-2/3, CC-BY(-SA), CC0, BSD, MIT and the Flight
of the Amazon Queen freeware license): check the manifest before redistributing.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cmp_to_key
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_audio
import corpus_image
from corpus_formats import FormatError
from corpus_source import Item, Package

# Per kind: PACKAGES (apt), LOCAL (other sources), SOURCES (name -> handler), SPLITS (fixed
# group splits), LEFT_OUT, TOP (folder under OUT), MEASURED and measure(path).
KINDS: dict[str, ModuleType] = {"audio": corpus_audio, "image": corpus_image}


# --------------------------------------------------------------------------- packages


def sh(*cmd: str, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fetch_corpus: {' '.join(cmd)} failed (exit {done.returncode}): "
                         f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def resolve_package(name: str) -> tuple[str, str | None]:
    """The package to fetch for ``name`` and a note when a nearby name had to be used."""
    policy = sh("apt-cache", "policy", name)
    if "Candidate:" in policy and "Candidate: (none)" not in policy:
        return name, None
    stem = re.sub(r"(-[\d.]+)+$", "", name)
    found = [
        ln.split(" - ")[0] for ln in sh("apt-cache", "search", "--names-only", stem).splitlines()
    ]
    best = difflib.get_close_matches(name, found, n=1, cutoff=0.5)
    if not best:
        raise SystemExit(f"fetch_corpus: {name}: no package close to it in this release")
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


def deb_version(deb: Path) -> str:
    return sh("dpkg-deb", "-f", str(deb), "Version").strip()


def version_gt(a: str, b: str) -> bool:
    """Debian version order (epoch, upstream, revision; ``~`` first), as dpkg compares."""
    done = subprocess.run(["dpkg", "--compare-versions", a, "gt", b], capture_output=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"fetch_corpus: dpkg --compare-versions {a} gt {b} failed: "
                         f"{done.stderr.decode(errors='replace').strip()}")  # fmt: skip
    return done.returncode == 0


def newest_deb(found: list[Path]) -> tuple[Path, str]:
    """The .deb with the highest Debian version (its control field, not its file name) and
    that version; on equal versions the first file name."""
    versions = {deb: deb_version(deb) for deb in sorted(found)}
    order = cmp_to_key(lambda a, b: 1 if version_gt(a[1], b[1]) else -1 if version_gt(b[1], a[1]) else 0)
    return max(versions.items(), key=order)


def fetch_package(name: str, debs: Path) -> Package:
    """apt-get download (skipped if a .deb is there), dpkg-deb -x (skipped if done)."""
    packages_dir(debs)
    found = cached_debs(name, debs)
    if not found:
        sh("apt-get", "download", name, cwd=debs)
        found = cached_debs(name, debs)
        if not found:
            raise SystemExit(f"fetch_corpus: {name}: apt-get download left no {name}_*.deb in {debs}")
    deb, version = newest_deb(found)
    root = debs.parent / "unpacked" / deb.stem
    if not (root / ".unpacked").exists():
        tmp = root.with_name(root.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)  # dpkg-deb -x makes only the last folder
        sh("dpkg-deb", "-x", str(deb), str(tmp))
        (tmp / ".unpacked").touch()
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    cr = root / "usr/share/doc" / name / "copyright"
    text = cr.read_text(encoding="utf-8", errors="replace") if cr.exists() else ""
    return Package(name, version, deb.name, root, text, f"{name}:/usr/share/doc/{name}/copyright")


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


def package_license(pkg: Package, hints: list[str]) -> str:
    """License of one file of ``pkg``; bare file names are tried too (archive members)."""
    names = [Path(h).name for h in hints]
    return license_for(pkg.copyright_text, [*hints, *names])


# --------------------------------------------------------------------------- build loop


def load_previous(manifest: Path) -> dict[str, dict]:
    if not manifest.exists():
        return {}
    rows = (json.loads(line) for line in manifest.read_text().splitlines() if line.strip())
    return {row["path"]: row for row in rows}


def build_rows(
    kind: ModuleType, pkg: Package, items: list[Item], out: Path, prev: dict, skipped: Counter
) -> list[dict]:
    """Write every item not yet on disk, measure it, and return its manifest rows.

    ``kind`` is ``corpus_audio`` or ``corpus_image``: its TOP folder, MEASURED fields and
    measure(). A file that cannot be written or measured is dropped and counted. A file
    already on disk is kept (with its previous measurements) only when its previous row comes
    from the same .deb and version; otherwise it is written and measured again.
    """
    rows = []
    for item in tqdm(items, desc=pkg.name, unit="file", leave=False):
        rel = f"{kind.TOP}/{pkg.name}/{item.rel}"
        dest = out / rel
        row = {"path": rel, "source": pkg.name, "version": pkg.version, "deb": pkg.deb,
               "license": package_license(pkg, item.hints), "copyright": pkg.copyright,
               "group": item.group, **item.meta}  # fmt: skip
        old = prev.get(rel)
        same_deb = old and old.get("deb") == pkg.deb and old.get("version") == pkg.version
        if dest.exists() and same_deb and all(k in old for k in kind.MEASURED):
            row.update({k: old[k] for k in kind.MEASURED})
            rows.append(row)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            item.make(tmp)
            os.replace(tmp, dest)
            row.update(kind.measure(dest))
        except Exception as err:
            skipped[f"empty or undecodable: {type(err).__name__}"] += 1
            tmp.unlink(missing_ok=True)
            dest.unlink(missing_ok=True)
            continue
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- splits


def split_for_group(key: str, val: float = 0.1, test: float = 0.1) -> str:
    """Deterministic split of a group: the first 8 bytes of sha256(key) as a fraction in [0, 1)."""
    frac = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if frac < test:
        return "test"
    if frac < test + val:
        return "validation"
    return "train"


def assign_splits(rows: list[dict], overrides: dict[str, str]) -> None:
    """Split per group: the override table (exact group or ``prefix*``) else the hash."""
    for row in rows:
        group = row["group"]
        split = overrides.get(group)
        if split is None:
            split = next(
                (s for k, s in overrides.items() if k.endswith("*") and group.startswith(k[:-1])),
                None,
            )
        row["split"] = split or split_for_group(group)


SPLIT_ORDER = ("train", "validation", "test")  # a duplicate is kept in the first of these it is in


def drop_duplicates(rows: list[dict], out: Path, skipped: dict[str, Counter]) -> list[dict]:
    """One row per distinct file content (sha256): packages ship the same clip under several names, and a
    copy in another split would put the same sound in train and test. The copy kept is the one in the
    earliest split (train, validation, test), then the first path; the others are deleted and counted
    in their source's skips."""
    def key(row: dict) -> tuple[int, str]:
        return SPLIT_ORDER.index(row["split"]), row["path"]

    kept: dict[str, dict] = {}
    for row in sorted(rows, key=key):
        digest = hashlib.sha256((out / row["path"]).read_bytes()).hexdigest()
        if digest in kept:
            skipped.setdefault(row["source"], Counter())[f"same content as a file kept ({row['split']})"] += 1
            (out / row["path"]).unlink(missing_ok=True)
            continue
        kept[digest] = row
    return list(kept.values())


# --------------------------------------------------------------------------- summary


def disk_bytes(folder: Path, rows: list[dict]) -> int:
    """Bytes of the files the manifest lists and of manifest.jsonl (not of stale files that an
    earlier run left, nor of summary.json)."""
    paths = [folder / r["path"] for r in rows] + [folder / "manifest.jsonl"]
    return sum(p.stat().st_size for p in paths if p.is_file())


def summarize(kind: str, rows: list[dict], extra: dict, out: Path) -> dict:
    """Totals per source x split (minutes or image counts) and the notes in ``extra``."""
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
    summary = {
        "unit": unit,
        "total": round(sum(per_split.values()), 2),
        "per_split": rnd(per_split),
        "groups_per_split": {k: len(v) for k, v in sorted(groups.items())},
        "per_source": {s: rnd(c) for s, c in sorted(per_source.items())},
        **({"per_kind": rnd(per_kind)} if kind == "audio" else {}),
        "disk_bytes": disk_bytes(out, rows),
        **extra,
    }
    return summary


def print_table(summary: dict) -> None:
    splits = ("train", "validation", "test")
    print(
        f"\n{'source':34s} {'files':>6s} "
        + " ".join(f"{s:>11s}" for s in splits)
        + f"   ({summary['unit']})"
    )
    for source, c in summary["per_source"].items():
        print(
            f"{source:34s} {int(c['files']):6d} " + " ".join(f"{c.get(s, 0):11.1f}" for s in splits)
        )
    print(
        f"{'TOTAL':34s} {'':6s} "
        + " ".join(f"{summary['per_split'].get(s, 0):11.1f}" for s in splits)
    )
    if "per_kind" in summary:
        print("by kind:", {k: f"{v / 60:.2f} h" for k, v in summary["per_kind"].items()})
    print(f"disk used under OUT: {summary['disk_bytes'] / 2**20:.0f} MiB")


# --------------------------------------------------------------------------- main


def run(kind: str, out: Path, debs: Path, only: list[str] | None) -> dict:
    """Fetch, unpack and extract every source of ``kind``; write manifest and summary."""
    mod = KINDS[kind]
    wanted = [*mod.PACKAGES, *mod.LOCAL]
    if only:
        unknown = [p for p in only if p not in wanted]
        if unknown:
            raise SystemExit(f"fetch_corpus: --only {' '.join(unknown)}: no such {kind} source "
                             f"(the {kind} sources: {' '.join(wanted)})")  # fmt: skip
        wanted = [p for p in wanted if p in only]
    if out.exists() and not out.is_dir():
        raise SystemExit(f"fetch_corpus: --out {out} is a file, not a folder")
    if debs.exists() and not debs.is_dir():
        raise SystemExit(f"fetch_corpus: --packages-dir {debs} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"fetch_corpus: --out {out}: cannot create the folder ({err})") from err
    manifest = out / "manifest.jsonl"
    prev = load_previous(manifest)
    rows = [r for r in prev.values() if only and r["source"] not in wanted]
    substitutions, skipped = {}, {}
    for name in wanted:
        if name in mod.LOCAL:
            pkg = mod.LOCAL[name]()
        else:
            # a .deb already in the packages folder is used without asking apt (no lists needed)
            real, note = (name, None) if cached_debs(name, debs) else resolve_package(name)
            if note:
                substitutions[name] = note
            pkg = fetch_package(real, debs)
            pkg.name = name if real == name else real
        handler, skips = mod.SOURCES[name], skipped.setdefault(name, Counter())
        try:
            items = list(handler(pkg, skips) if kind == "image" else handler(pkg))
        except (FormatError, OSError) as err:  # a damaged archive or file inside the package
            raise SystemExit(f"fetch_corpus: {pkg.name} ({pkg.deb}): {err}") from err
        rows += build_rows(mod, pkg, items, out, prev, skips)
    assign_splits(rows, mod.SPLITS)
    rows = drop_duplicates(rows, out, skipped)
    rows.sort(key=lambda r: r["path"])
    tmp = manifest.with_name("manifest.jsonl.part")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, manifest)
    extra = {
        "left_out": mod.LEFT_OUT,
        "substitutions": substitutions,
        "skipped": {k: dict(v) for k, v in skipped.items() if v},
        "commands": f"python benchmarks/fetch_corpus.py {kind} --out {out} --packages-dir {debs}",
    }
    summary = summarize(kind, rows, extra, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print_table(summary)
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
    args = ap.parse_args()
    run(args.kind, args.out, args.packages_dir, args.only)


if __name__ == "__main__":
    main()
