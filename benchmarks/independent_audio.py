"""Real speech the audio tokenizer never trained on and no choice was made on, scored as ``mmtok eval`` scores it.

    python benchmarks/independent_audio.py --out /work/data/indep [--model audio] [--clips 120] [--dnsmos]

Two sets from Debian packages that are not among the corpus's sources (``fetch_corpus.py``),
fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` as the corpus is:

- ``it-menardi``: asterisk-prompt-it-menardi-wav, Italian telephone prompts by one speaker,
  8 kHz WAV (narrowband: the tokenizer reads them resampled to 16 kHz; GPL-2);
- ``hedgewars``: hedgewars-data, the acted voice packs of the game (``Sounds/voices/*``:
  15 packs, accents, a robot and a singer among them; Ogg Vorbis, 44.1 kHz; GPL-2 / CC).

Clips of 1-13 s, at most ``--clips`` per set, drawn with a fixed seed. One JSON line per set: the
clips and the means ``mmtok eval`` gives (``mmtok.evaluate``), and the file lists under ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_clips import load_audio_tokenizer
from common import emit, positives, run_script
from corpus_debs import fetch_package

from mmtok.evaluate import Evaluation

SETS = {  # name -> (package, glob under its root)
    "it-menardi": ("asterisk-prompt-it-menardi-wav", "usr/share/asterisk/sounds/**/*.wav"),
    "hedgewars": ("hedgewars-data", "usr/share/games/hedgewars/Data/Sounds/voices/**/*.ogg"),
}
MIN_SECONDS, MAX_SECONDS = 1.0, 13.0


def pick(root: Path, pattern: str, clips: int, seed: int) -> list[Path]:
    """Files under ``root`` matching ``pattern`` that last 1-13 s, ``clips`` of them drawn with ``seed``."""
    files = sorted(p for p in root.glob(pattern) if MIN_SECONDS <= sf.info(str(p)).duration <= MAX_SECONDS)
    random.Random(seed).shuffle(files)
    return sorted(files[:clips])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the packages, what they unpack to and the lists")
    ap.add_argument("--model", default="audio", help="the audio tokenizer: a shipped name or a checkpoint folder")
    ap.add_argument("--clips", type=int, default=120, help="clips per set (default 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dnsmos", action="store_true", help="also DNSMOS of each decoded clip and its original")
    ap.add_argument("--only", nargs="+", choices=sorted(SETS), default=sorted(SETS), help="which sets")
    args = ap.parse_args(argv)
    positives(args, "--clips")
    load_audio_tokenizer(args.model, "--model")  # a wrong model refused before any package is fetched
    for name in args.only:
        package, pattern = SETS[name]
        pkg = fetch_package(package, args.out / "debs")
        files = pick(pkg.root, pattern, args.clips, args.seed)
        (args.out / f"{name}.txt").write_text("".join(f"{f}\n" for f in files))
        ev = Evaluation({"image": [], "video": [], "audio": [args.model]}, with_dnsmos=args.dnsmos)
        for f in tqdm(files, desc=name, unit="clip", file=sys.stderr):
            ev.rows.extend(ev.score_file(f))
        (summary,) = ev.summaries()
        emit(bench="independent_audio", set=name, package=package, version=pkg.version, clips=len(files),
             seed=args.seed, **{k: v for k, v in summary.items() if k not in ("summary", "files")})
        with (args.out / f"{name}.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in ev.rows)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
