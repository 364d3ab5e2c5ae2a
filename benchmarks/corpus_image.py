"""Image extraction and photo selection for the real-data image corpus.

Used by ``fetch_corpus.py`` (which fetches, unpacks, writes, measures and splits)::

    python benchmarks/fetch_corpus.py image --out /work/data/corpus/image \
        --packages-dir /work/data/corpus/debs

Only photographs are kept. Each handler takes the unpacked ``Package`` and yields an
``Item`` per picture; the group is the activity bundle (gcompris) or the picture itself:

* gcompris-qt-data: photos inside the activity bundles (Qt ``.rcc``); paintings and puzzle
  backgrounds are left out by name, the rest pass ``photo_reject_reason`` (GPL-3(+)).
* enlightenment-data: the largest JPEG stream of each background ``.edj`` (BSD-2-clause).
* mate-backgrounds: the nature folder and the Elephants photo (GPL-2+).
* lomiri-wallpapers-16.04: the wallpapers minus two listed art pieces (CC-BY(-SA)-4.0,
  CC0-1.0).
* plasma-workspace-wallpapers: the largest file of each listed photographic wallpaper
  (GPL-2+).
* scikit-image (pip, not a Debian package): the sample photos in ``skimage/data``, minus
  the synthetic ones, that pass ``photo_reject_reason``; each image's license is what its
  loader's docstring in ``skimage/data/_fetchers.py`` says (``SKIMAGE_LICENSES``: CC0, public
  domain, ...; "unstated" where it says nothing), not the code's BSD-3-Clause.

The licenses above are what the manifest records per file; the manifest is the reference.
Smaller copies of the same picture (``near_duplicates``) are dropped here, identical files
by ``corpus_manifest.drop_duplicates`` over the whole corpus; the lists of art left out were made by looking at every candidate once, and
every skip is counted in ``summary.json``. Kept images keep their original bytes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import corpus_formats as cf
from corpus_source import Item, Package, bytes_of

TOP = "images"  # files go to OUT/images/<source>/...
PACKAGES = [
    "gcompris-qt-data", "enlightenment-data", "mate-backgrounds",
    "lomiri-wallpapers-16.04", "plasma-workspace-wallpapers",
]  # fmt: skip
LEFT_OUT: dict[str, str] = {}
MEASURED = ("width", "height")


def image_info(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def measure(path: Path) -> dict:
    """The manifest's measured fields (``MEASURED``) for a written file."""
    width, height = image_info(path)
    return {"width": width, "height": height}


def decoder_versions() -> str:
    """The decoder a file that fails is remembered with (``corpus_failures``): Pillow's version."""
    import PIL

    return f"Pillow {PIL.__version__}"


# --------------------------------------------------------------------------- photographs


def photo_reject_reason(im, colours: bool = True) -> str | None:
    """Why a decoded PIL image does not look like a photograph, or None if it does.

    Rejects a short side under 400 px, more than 1% transparent pixels (cut-outs and
    sprites), and, on a 256x256 copy, fewer than 4000 distinct colours (drawings, icons,
    UI pieces) or, for grey images, fewer than 128 grey levels. ``colours=False`` skips the
    colour test (for hand-checked sources, where dark or foggy photos have few colours).
    """
    import numpy as np

    if min(im.size) < 400:
        return "small (short side < 400 px)"
    if "A" in im.getbands() or "transparency" in im.info:
        alpha = np.asarray(im.convert("RGBA").resize((256, 256)))[..., 3]
        if (alpha < 250).mean() > 0.01:
            return "transparent cut-out"
    if not colours:
        return None
    rgb = np.asarray(im.convert("RGB").resize((256, 256))).astype(np.int64).reshape(-1, 3)
    if np.abs(rgb - rgb.mean(1, keepdims=True)).max() <= 12:
        if len(np.unique(rgb.mean(1).astype(np.int64))) < 128:
            return "grey drawing (few grey levels)"
    elif len(np.unique(rgb[:, 0] * 65536 + rgb[:, 1] * 256 + rgb[:, 2])) < 4000:
        return "few distinct colours (drawing or UI)"
    return None


def size_free_name(name: str) -> str:
    """File stem without a ``_WxH`` / ``-WxH`` size suffix, lowercased (``Elephants_3840x2160``)."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"[_-]?\d{3,5}x\d{3,5}$", "", stem).lower()


def near_duplicates(cands: list[tuple[str, int, int, object]]) -> set[int]:
    """Indices to drop among ``(name, width, height, thumb)``: smaller copies of a picture.

    Two candidates are copies when their size-free names match, their aspect ratios agree
    within 3% and their 16x16 grey thumbnails (float arrays, 0-255) differ by less than 12
    on average; the one with most pixels is kept.
    """
    import numpy as np

    order = sorted(range(len(cands)), key=lambda i: -cands[i][1] * cands[i][2])
    kept: dict[str, list[int]] = {}
    drop = set()
    for i in order:
        name, w, h, thumb = cands[i]
        key = size_free_name(name)
        for j in kept.get(key, []):
            _, w2, h2, thumb2 = cands[j]
            same_shape = abs(w / h - w2 / h2) < 0.03 * (w2 / h2)
            if same_shape and np.abs(np.asarray(thumb) - np.asarray(thumb2)).mean() < 12:
                drop.add(i)
                break
        else:
            kept.setdefault(key, []).append(i)
    return drop


# --------------------------------------------------------------------------- sources

RASTER = (".webp", ".jpg", ".jpeg", ".png")
# Decisions made by looking at every candidate once (recorded here and in summary.json).
GCOMPRIS_NOT_PHOTOS = re.compile(r"(?i)gogh|gauguin|bruegel|bosschaert|unicorn|/babyshapes/")
ENLIGHTENMENT_ART = {"Dunes", "Flat-Fan", "Flat-Stone-Pattern", "Paper-Flower", "Sunset-Hills"}
LOMIRI_ART = {"analogpattern_by_Peter_Nerlich", "umang_by_Abhishek_Mudgal"}
PLASMA_PHOTOS = {
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
}  # fmt: skip  (the other Plasma wallpapers are vector or abstract art)
SKIMAGE_SYNTHETIC = {"chessboard_GRAY", "chessboard_RGB", "color", "logo", "phantom", "horse"}
# Each sample image's license as its loader's docstring in skimage/data/_fetchers.py states it
# (scikit-image 0.26); an image whose docstring states none, or one not listed here, is "unstated".
SKIMAGE_LICENSES = {
    "astronaut": "public-domain", "brick": "CC0", "camera": "CC0", "cell": "CC0", "chelsea": "CC0",
    "clock_motion": "public-domain", "coffee": "CC0", "coins": "no-known-copyright-restrictions",
    "grass": "CC0", "gravel": "CC0", "hubble_deep_field": "public-domain",
    "ihc": "no-known-copyright-restrictions", "microaneurysms": "CC0", "retina": "CC0-1.0",
    "rocket": "public-domain", "text": "public-domain",
}  # fmt: skip


@dataclass
class Candidate:
    rel: str
    group: str
    data: bytes
    hint: str
    size: tuple[int, int]
    thumb: object


def open_image(data: bytes):
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def candidate(rel: str, group: str, data: bytes, hint: str, skipped: Counter, check: str = "photo"):
    """A Candidate if the bytes decode and pass ``check``: "photo" (size, alpha, colours) or
    "size" (size and alpha only: hand-checked sources)."""
    import numpy as np

    try:
        im = open_image(data)
    except Exception as err:
        skipped[f"does not decode: {type(err).__name__}"] += 1
        return None
    reason = photo_reject_reason(im, colours=check == "photo")
    if reason:
        skipped[reason] += 1
        return None
    thumb = np.asarray(im.convert("L").resize((16, 16)), dtype=float)
    return Candidate(rel, group, data, hint, im.size, thumb)


def without_smaller_copies(cands: list[Candidate], skipped: Counter) -> list[Candidate]:
    """Drop smaller copies of the same picture (``near_duplicates``); identical files are left to
    ``corpus_manifest.drop_duplicates``, which keeps one per content over the whole corpus."""
    drop = near_duplicates([(c.rel, *c.size, c.thumb) for c in cands])
    skipped["smaller copy of the same picture"] += len(drop)
    return [c for i, c in enumerate(cands) if i not in drop]


def items_of(cands: list[Candidate], skipped: Counter, meta: Callable[[Candidate], dict] | None = None
             ) -> Iterator[Item]:
    """Items of the candidates left by ``without_smaller_copies``; ``meta(c)`` adds row fields."""
    for c in without_smaller_copies(cands, skipped):
        yield Item(c.rel, c.group, bytes_of(c.data), [c.hint], {"origin": c.hint, **(meta(c) if meta else {})})


def image_gcompris(pkg: Package, skipped: Counter) -> Iterator[Item]:
    """Photographs inside the activity bundles (Qt .rcc); group = bundle (activity)."""
    cands = []
    for rcc in sorted((pkg.root / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        try:
            entries = cf.rcc_entries(rcc.read_bytes())
        except cf.FormatError as err:
            raise cf.FormatError(f"{rcc}: {err}") from err
        for e in entries:
            if not e.path.lower().endswith(RASTER):
                continue
            if e.payload is None:
                skipped[e.skipped] += 1
                continue
            if GCOMPRIS_NOT_PHOTOS.search(e.path):
                skipped["painting or puzzle background (by name)"] += 1
                continue
            rel = f"{rcc.stem}/{e.path.split('/resource/')[-1]}"
            c = candidate(rel, f"gcompris:{rcc.stem}", e.payload, e.path, skipped)
            cands += [c] if c else []
    yield from items_of(cands, skipped)


def image_enlightenment(pkg: Package, skipped: Counter) -> Iterator[Item]:
    """The largest JPEG stream of each background .edj (Eet) file; group = the .edj.

    A damaged stream (cut short or corrupt) is never used; it is counted in the skips, as
    "largest" when it spans more bytes than the complete stream used instead.
    """
    cands = []
    for edj in sorted((pkg.root / "usr/share/enlightenment/data/backgrounds").glob("*.edj")):
        if edj.stem in ENLIGHTENMENT_ART:
            skipped["vector or abstract art (listed)"] += 1
            continue
        streams, damaged = cf.jpeg_scan(edj.read_bytes())
        streams = sorted(streams, key=lambda s: -len(s[1]))
        if not streams:
            skipped["only damaged JPEG streams in .edj" if damaged else "no JPEG stream in .edj"] += 1
            continue
        for _, span in damaged:
            if span > len(streams[0][1]):
                skipped["largest JPEG stream in .edj damaged (a smaller complete copy used)"] += 1
            else:
                skipped["damaged smaller JPEG stream in .edj (not used)"] += 1
        skipped["smaller copy of the same picture"] += len(streams) - 1
        hint = edj.relative_to(pkg.root).as_posix()
        c = candidate(
            f"{edj.stem}.jpg", f"enlightenment:{edj.stem}", streams[0][1], hint, skipped, "size"
        )
        cands += [c] if c else []
    yield from items_of(cands, skipped)


def image_files(
    pkg: Package, skipped: Counter, sub: str, paths: list[Path], tag: str
) -> Iterator[Item]:
    """Plain image files, each its own group (a wallpaper is one photo)."""
    cands = []
    for p in paths:
        rel = p.relative_to(pkg.root / sub).as_posix()
        group = f"{tag}:{size_free_name(rel)}"
        c = candidate(
            rel, group, p.read_bytes(), p.relative_to(pkg.root).as_posix(), skipped, "size"
        )
        cands += [c] if c else []
    yield from items_of(cands, skipped)


def image_mate(pkg: Package, skipped: Counter) -> Iterator[Item]:
    base = pkg.root / "usr/share/backgrounds/mate"
    paths = sorted(base.glob("nature/*.jpg")) + sorted(base.glob("abstract/Elephants*.jpg"))
    skipped["abstract or desktop art (folder)"] += len(list(base.glob("*/*"))) - len(paths)
    yield from image_files(pkg, skipped, "usr/share/backgrounds/mate", paths, "mate")


def image_lomiri(pkg: Package, skipped: Counter) -> Iterator[Item]:
    paths = sorted((pkg.root / "usr/share/backgrounds").glob("*.jpg"))
    skipped["vector or abstract art (listed)"] += sum(p.stem in LOMIRI_ART for p in paths)
    paths = [p for p in paths if p.stem not in LOMIRI_ART]
    yield from image_files(pkg, skipped, "usr/share/backgrounds", paths, "lomiri")


def image_plasma(pkg: Package, skipped: Counter) -> Iterator[Item]:
    """The largest file of each listed photographic wallpaper (others are vector art)."""
    # NOTE: p.stat() follows symlinks, and in plasma-workspace-wallpapers 5.27 every size but
    # one (2560x1600.jpg) is a symlink to it, so all sizes tie and the alphabetically first
    # link wins: 10 wallpapers are written as .../contents/images/1280x1024.jpg although they
    # hold the 2560x1600 picture (ColorfulCups has only 2560x1600.jpg), and the links are
    # counted as "smaller copy of the same picture". The pixels are the right ones; skipping
    # symlinks would rename those 10 files (path, origin) in the manifest, so the selection is
    # kept as it is until the corpus is re-versioned.
    paths = []
    for folder in sorted((pkg.root / "usr/share/wallpapers").iterdir()):
        if folder.name not in PLASMA_PHOTOS:
            skipped["vector or abstract art (not listed as a photo)"] += 1
            continue
        images = sorted(
            (folder / "contents/images").iterdir(), key=lambda p: (-p.stat().st_size, p.name)
        )
        skipped["smaller copy of the same picture"] += len(images) - 1
        paths.append(images[0])
    for c in image_files(pkg, skipped, "usr/share/wallpapers", paths, "plasma"):
        c.group = "plasma:" + c.rel.split("/")[0].lower()
        yield c


def skimage_package() -> Package:
    import importlib.metadata as md

    try:
        import skimage
    except ImportError as e:
        raise SystemExit("fetch_corpus image: the scikit-image sample photos are part of the corpus; "
                         'install them with pip install -e ".[image-data]"') from e

    # the images' licenses are in their loaders' docstrings (SKIMAGE_LICENSES), not in the code's LICENSE
    where = "scikit-image:skimage/data/_fetchers.py"
    return Package("scikit-image", md.version("scikit-image"), "pip", Path(skimage.__file__).parent, "", where)


def image_skimage(pkg: Package, skipped: Counter) -> Iterator[Item]:
    """The sample photos shipped in skimage/data: the synthetic ones are skipped, the rest pass the
    photo rule (``photo_reject_reason``); each carries its license from ``SKIMAGE_LICENSES``."""
    cands = []
    for p in sorted((pkg.root / "data").iterdir()):
        if p.suffix.lower() not in (".png", ".jpg"):
            continue
        if p.stem in SKIMAGE_SYNTHETIC:
            skipped["synthetic test pattern or drawing (listed)"] += 1
            continue
        group = "scikit-image:" + re.sub(r"_(left|right)$", "", p.stem)  # stereo pair = one group
        c = candidate(p.name, group, p.read_bytes(), f"skimage/data/{p.name}", skipped)
        cands += [c] if c else []
    yield from items_of(cands, skipped, lambda c: {"license": SKIMAGE_LICENSES.get(Path(c.rel).stem, "unstated")})


SOURCES = {
    "gcompris-qt-data": image_gcompris,
    "enlightenment-data": image_enlightenment,
    "mate-backgrounds": image_mate,
    "lomiri-wallpapers-16.04": image_lomiri,
    "plasma-workspace-wallpapers": image_plasma,
    "scikit-image": image_skimage,
}
LOCAL: dict[str, Callable[[], Package]] = {"scikit-image": skimage_package}  # not from apt
# gcompris groups are whole activities; three of them hold the held-out photos so that
# validation and test both get 10+ photographs from several sources.
SPLITS = {
    "gcompris:explore_farm_animals": "validation", "gcompris:explore_world_music": "validation",
    "gcompris:explore_world_animals": "test", "gcompris:*": "train",
}  # fmt: skip
