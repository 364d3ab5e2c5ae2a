"""Build the image tokenizer's training and held-out folders from the allowed sources.

Sources: the sample images bundled with scikit-image (``skimage/data``) and the
photos of Debian's ``mate-backgrounds`` package (``/usr/share/backgrounds/mate``;
``apt-get install mate-backgrounds``). A fixed list of images is held out for
evaluation and never trained on.

    python benchmarks/image_data.py --out /work/data/image
    -> /work/data/image/train/{skimage,mate}/...   /work/data/image/heldout/...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from common import run_script

MATE_DIR = Path("/usr/share/backgrounds/mate")
# photos only: the nature folder plus the one photographic "abstract" picture (smallest copy)
MATE_PHOTOS = ["nature/*.jpg", "abstract/Elephants.jpg"]
SKIMAGE_SKIP = {"chessboard_GRAY.png", "chessboard_RGB.png"}  # duplicates of each other at 2 modes
HELD_OUT = {
    "skimage/coffee.png",
    "skimage/rocket.jpg",
    "mate/GreenMeadow.jpg",
    "mate/RainDrops.jpg",
    "mate/Wood.jpg",
}


def sources() -> dict[str, Path]:
    """``{"skimage/NAME" or "mate/NAME": path}`` for every allowed image."""
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    out = {
        f"skimage/{p.name}": p
        for p in sorted(sk.iterdir())
        if p.suffix.lower() in (".png", ".jpg") and p.name not in SKIMAGE_SKIP
    }
    if not MATE_DIR.is_dir():
        raise SystemExit(f"{MATE_DIR} is missing: apt-get install mate-backgrounds")
    for pattern in MATE_PHOTOS:
        for p in sorted(MATE_DIR.glob(pattern)):
            out[f"mate/{p.name}"] = p
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/data/image", help="folder to fill (train/ and heldout/)")
    args = ap.parse_args()
    out = Path(args.out)
    listing: dict[str, list[str]] = {"train": [], "heldout": []}
    for name, path in sources().items():
        split = "heldout" if name in HELD_OUT else "train"
        dest = out / split / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        listing[split].append(name)
    missing = HELD_OUT - set(listing["heldout"])
    if missing:
        raise SystemExit(f"held-out images not found: {sorted(missing)}")
    (out / "listing.json").write_text(json.dumps(listing, indent=1))
    print(json.dumps({k: len(v) for k, v in listing.items()}))


if __name__ == "__main__":
    sys.exit(run_script(main))
