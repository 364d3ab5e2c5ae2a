"""How the audio codebook policy generalises to new speakers, measured on training data only.

The held-out split of the audio corpus has voices and voice variants that training
never heard. This probe rebuilds that situation inside the *training* split, so a
codebook policy can be chosen without looking at held-out audio: whole voices
(``--probe-voices``) and variants (``--probe-variants``) and a fraction of the
synthetic clips are taken out, each policy fits a K-code codebook on the rest, and
its codebook usage and bare-code reconstruction error are measured on

- ``probe_100``: 75 clips of the probe voices/variants (plus ``en``/``en-us`` with no
  variant, as in the held-out design) and 25 synthetic clips, about as many tokens
  as the held-out set;
- ``probe_all``: every clip that was taken out.

Policies: ``lloyd`` (plain k-means), ``clip_balanced`` (every recording its own
group) and ``speaker_balanced`` (speech grouped by espeak-ng voice and variant),
both with :func:`mmtok.audio.codebook.balance_codes`.

Usage: ``python benchmarks/audio_codebook_probe.py --data /work/data/audio/corpus``
(a corpus written by ``mmtok.audio.corpus.build_corpus``). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, positives, run_script, share

from mmtok.audio.codebook import balance_codes
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import UsageError
from mmtok.core.metrics import codebook_usage
from mmtok.vq.kmeans import lloyd
from mmtok.vq.search import nearest_code

Entry = dict  # one clip of the manifest: "file", "source" and, for speech, "voice"
Cache = dict[str, tuple[torch.Tensor, float]]  # file -> (latents, log-mel span of its target frames)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="corpus folder with manifest.json and train/")
    ap.add_argument("--probe-voices", default="sv,el,nl", help="espeak-ng voices taken out of training")
    ap.add_argument("--probe-variants", default="+m3,+f2", help="espeak-ng variants taken out of training")
    ap.add_argument("--synthetic-fraction", type=float, default=0.1, help="synthetic clips taken out")
    ap.add_argument("--codebook-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=20, help="balancing rounds")
    ap.add_argument("--min-clips", type=int, default=30, help="clip_balanced: recordings a code must serve")
    ap.add_argument("--min-speakers", type=int, default=15, help="speaker_balanced: groups a code must serve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def split_train(train: list[Entry], voices: set[str], variants: set[str], synthetic_fraction: float,
                rng: random.Random) -> tuple[list[Entry], list[Entry], list[Entry], list[Entry]]:
    """Split the training clips into ``(fit, probe, design_speech, design_synth)``.

    Speech in a probe voice or variant is taken out (``probe``); of it, the probe voices and ``en``/``en-us``
    with a probe variant or none also form ``design_speech``. Each synthetic clip is taken out with
    probability ``synthetic_fraction`` (``design_synth``, also in ``probe``). Everything else is ``fit``.
    """
    fit, probe, design_speech, design_synth = [], [], [], []
    for e in train:
        if e["source"] == "espeak-ng":
            base, _, var = e["voice"].partition("+")
            var = "+" + var if var else ""
            if base in voices | {"en", "en-us"} and var in variants | {""}:
                design_speech.append(e)
                probe.append(e)
            elif base in voices or var in variants:
                probe.append(e)
            else:
                fit.append(e)
        elif e["source"] == "synthetic" and rng.random() < synthetic_fraction:
            design_synth.append(e)
            probe.append(e)
        else:
            fit.append(e)
    return fit, probe, design_speech, design_synth


def clip_latents(tok: AudioTokenizer, root: Path, e: Entry) -> tuple[torch.Tensor, float]:
    """One clip's latents and the range (max - min) of the log-mel frames they cover."""
    feats = tok.context_features(load_audio(root / "train" / e["file"], target_rate=tok.sample_rate))
    ctx = tok.context_frames
    target = feats[:, ctx : feats.shape[-1] - ctx]
    with torch.no_grad():
        return tok.latents(feats[None])[0], float(target.max() - target.min())


def fit_rows(fit: list[Entry], cache: Cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The fit clips' latents stacked, with each row's clip index and speaker-group index.

    A speaker group is an espeak-ng voice+variant, or the file itself when it has none.
    Returns ``(rows, clips, speakers, number of speaker groups)``.
    """
    rows = torch.cat([cache[e["file"]][0] for e in fit])
    clips = torch.cat([torch.full((cache[e["file"]][0].shape[0],), i) for i, e in enumerate(fit)])
    speaker: dict[str, int] = {}
    label = [speaker.setdefault(e.get("voice") or "file:" + e["file"], len(speaker)) for e in fit]
    speakers = torch.tensor(label)[clips]
    return rows, clips, speakers, len(speaker)


def fit_policies(rows: torch.Tensor, clips: torch.Tensor, speakers: torch.Tensor,
                 args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, float]]:
    """Fit each policy's codebook on ``rows``: ``{policy: (centers, fit seconds)}``.

    The balanced policies start from the ``lloyd`` codebook, so their seconds include its fit.
    """
    k = args.codebook_size
    g = torch.Generator().manual_seed(args.seed)
    t = time.perf_counter()
    base, _ = lloyd(rows, rows[torch.randperm(rows.shape[0], generator=g)[:k]].clone(), 25)
    lloyd_s = time.perf_counter() - t
    policies = {"lloyd": (base, lloyd_s)}
    for name, groups, m in (("clip_balanced", clips, args.min_clips), ("speaker_balanced", speakers, args.min_speakers)):
        t = time.perf_counter()
        centers, _ = balance_codes(rows, groups, base, rounds=args.rounds, min_groups=m, iters=3,
                                   generator=torch.Generator().manual_seed(args.seed))
        policies[name] = (centers, lloyd_s + time.perf_counter() - t)
    return policies


def probe_stats(entries: list[Entry], cache: Cache, centers: torch.Tensor, k: int) -> dict:
    """Codebook usage (of ``k`` codes), perplexity and mean relative bare-code L1 error of ``centers`` over ``entries``."""
    seen = torch.zeros(k, dtype=torch.long)
    errs = []
    for e in entries:
        z, span = cache[e["file"]]
        codes = nearest_code(z, centers)
        seen += torch.bincount(codes, minlength=k)
        # each code is a slice of log-mel frames, so |code - slice| is the bare-code error
        errs.append(float((centers[codes] - z).abs().mean()) / max(span, 1e-6))
    usage, perplexity = codebook_usage(seen)
    return {"clips": len(entries), "tokens": int(seen.sum()), "usage": round(usage, 4),
            "perplexity": round(perplexity, 1), "rel_l1_codes_only": round(sum(errs) / len(errs), 5)}


def main(argv: list[str] | None = None) -> None:
    """Split the training clips, fit each policy's codebook, and print one JSON row per policy."""
    args = parse_args(argv)
    positives(args, "--codebook-size", "--rounds", "--min-clips", "--min-speakers", "--threads")
    share("--synthetic-fraction", args.synthetic_fraction)
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "manifest.json").is_file():
        what = "no such folder" if not root.exists() else "not a corpus folder: it has no manifest.json"
        raise UsageError(f"--data {root}: {what} (mmtok.audio.corpus.build_corpus writes one)")
    manifest = json.loads((root / "manifest.json").read_text())
    voices, variants = set(args.probe_voices.split(",")), set(args.probe_variants.split(","))
    tok = AudioTokenizer(AudioTokenizerConfig()).eval()  # the "slice" encoder: each token's own log-mel frames

    rng = random.Random(args.seed)
    fit, probe, design_speech, design_synth = split_train(manifest["train"], voices, variants,
                                                          args.synthetic_fraction, rng)
    probe_100 = rng.sample(design_speech, min(75, len(design_speech))) + rng.sample(design_synth, min(25, len(design_synth)))

    if not fit:
        raise UsageError(f"--data {root}: every training clip is a probe clip (--probe-voices, --probe-variants, "
                         "--synthetic-fraction): leave some to fit the codebooks on")
    t = time.perf_counter()
    cache = {e["file"]: clip_latents(tok, root, e) for e in fit + probe}
    rows, clips, speakers, n_speakers = fit_rows(fit, cache)
    if rows.shape[0] < args.codebook_size:
        raise UsageError(f"--codebook-size {args.codebook_size}: the {len(fit)} clips left to fit on give "
                         f"{rows.shape[0]} tokens, fewer than the codes: give a smaller --codebook-size or more data")
    emit({"bench": "audio_codebook_probe", "fit_clips": len(fit), "fit_tokens": int(rows.shape[0]),
          "fit_speaker_groups": n_speakers, "probe_clips": len(probe), "probe_100_clips": len(probe_100),
          "probe_voices": sorted(voices), "probe_variants": sorted(variants),
          "features_seconds": round(time.perf_counter() - t, 1)})

    for name, (centers, secs) in fit_policies(rows, clips, speakers, args).items():
        row = {"bench": "audio_codebook_probe", "policy": name, "codebook_size": args.codebook_size,
               "fit_seconds": round(secs, 1)}
        for set_name, entries in (("probe_100", probe_100), ("probe_all", probe)):
            row[set_name] = probe_stats(entries, cache, centers, args.codebook_size)
        emit(row)


if __name__ == "__main__":
    sys.exit(run_script(main))
