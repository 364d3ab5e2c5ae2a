"""Audio tokenizer benchmark: one JSON object per line, everything side by side in one run.

Two modes. The real-corpus mode (waveform metrics on a fetched corpus, in
``benchmarks/audio_quality.py``, whose docstring lists its lines) runs when ``--manifest`` is given::

    python benchmarks/audio.py --manifest /work/data/corpus/audio/manifest.jsonl --split validation \
        --cache /work/data/audio/cache --model MODEL [--vocoder RUN/best] [--clips 40] [--threads 1] \
        [--compare audio] [--kmeans-vectors 200000] [--kmeans-iters 20] [--skip speed,usage]

The synthetic-corpus mode (log-mel only, on a folder with ``train/`` and ``heldout/``)::

    python benchmarks/audio.py --data /work/data/audio/corpus [--model audio] [--threads 2]

Lines of the synthetic-corpus mode (``"bench"`` names the measurement):

- ``reconstruction``: on ``DATA/heldout`` (audio training never read), L1 between the
  clip's log-mel and its reconstruction from tokens, divided by the clip's log-mel
  range (max - min), averaged over clips; for mmtok and two baselines at the same
  token rate and bits per second, both fitted on ``DATA/train`` only:
  k-means (Lloyd, same K) over the same feature slices, and dMel-style uniform
  binning of mel channels (bands of channels averaged so that bits per slice equal
  ``log2 K``; the band/bit split is picked on training data).
- ``encode_speed``: a 10 s clip at 24 kHz, our encode (resampling to 16 kHz and the
  mel front end included) vs EnCodec 24 kHz (``pretrained=False``, 1.5 kbps); median
  of repeats, same threads.
- ``realtime_factor``: seconds of compute per second of audio for encode, decode to
  log-mel, and decode to waveform (the tokenizer's default: its learned vocoder, else
  Griffin-Lim), with EnCodec's decoder on its own codes of the clip timed in turn.
- ``peak_memory``: peak resident memory growth while encoding the 10 s clip, ours and
  EnCodec's, each measured in a fresh process.
- ``codebook_usage``: fraction of the K codes used on the held-out audio.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from audio_baselines import (
    ENCODEC_RATE,
    decode_speed,
    encode_speed,
    encodec_24khz,
    fit_dmel,
    rel_l1,
    slices,
    timed,
    unslice,
)
from common import emit

import mmtok
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.memory import rss_mib
from mmtok.core.metrics import codebook_usage
from mmtok.vq.kmeans import kmeans
from mmtok.vq.search import nearest_code

CLIP_SECONDS = 10.0  # the speed clip
def _peak_child(which: str, model: str, clip: np.ndarray, threads: int, q: Any) -> None:
    torch.set_num_threads(threads)
    x = torch.from_numpy(clip)
    if which == "mmtok":
        tok = mmtok.load(model)
        run = lambda: tok.encode(x, ENCODEC_RATE)  # noqa: E731
    else:
        m = encodec_24khz()

        def run() -> None:
            with torch.inference_mode():
                m.encode(x[None, None])

    run()  # warm-up: lazily built buffers and caches are not the encode's working memory
    gc.collect()
    before = rss_mib()
    peak = [before]
    done = threading.Event()

    def poll() -> None:  # polled, not the kernel's high-water mark: the warm-up above already set that
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.0005)

    t = threading.Thread(target=poll)
    t.start()
    run()
    done.set()
    t.join()
    q.put(max(peak[0], rss_mib()) - before)


def peak_mb(which: str, model: str, clip: np.ndarray, threads: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(which, model, clip, threads, q))
    p.start()
    value = q.get(timeout=600)
    p.join()
    return float(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--manifest" or a.startswith("--manifest=") for a in argv):
        import audio_quality  # the real-corpus mode: its own options (python benchmarks/audio_quality.py --help)

        return audio_quality.main(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="--manifest M.jsonl ...: the real-corpus mode (see benchmarks/audio_quality.py --help)")
    ap.add_argument("--data", required=True, help="corpus folder with train/ and heldout/")
    ap.add_argument("--model", default="audio", help="shipped name or checkpoint folder")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for every measurement")
    ap.add_argument("--kmeans-vectors", type=int, default=100_000, help="training slices k-means is fitted on")
    ap.add_argument("--kmeans-iters", type=int, default=25, help="Lloyd iterations")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    ap.add_argument("--more-heldout", default=None,
                    help="another folder of audio training never read (searched recursively): codebook usage on it too")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: reconstruction,speed,memory")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok: AudioTokenizer = mmtok.load(args.model)  # type: ignore[assignment]
    data = Path(args.data)
    held = sorted((data / "heldout").glob("*.wav"))
    train = sorted((data / "train").glob("*.wav"))
    if not held or not train:
        raise SystemExit(f"{data} needs train/*.wav and heldout/*.wav")
    k, fpt, tps = tok.codebook_size, tok.cfg.frames_per_token, tok.tokens_per_second
    bits = math.log2(k)
    held_audio = [load_audio(f, target_rate=tok.sample_rate) for f in held]

    # ------------------------------------------------------------ codebook usage (and codes for below)
    tok.vq.reset_stats()
    codes = [tok.encode(a, tok.sample_rate) for a in held_audio]
    st = tok.vq.usage_stats()
    emit(bench="codebook_usage", set=str(data / "heldout"), clips=len(held), tokens=st.total, codebook_size=k,
         usage=round(st.usage, 4), perplexity=round(st.perplexity, 1))
    if args.more_heldout:
        more = sorted(Path(args.more_heldout).rglob("*.wav"))
        tok.vq.reset_stats()
        for f in more:
            tok.encode(f)
        st2 = tok.vq.usage_stats()
        emit(bench="codebook_usage", set=args.more_heldout, clips=len(more), tokens=st2.total, codebook_size=k,
             usage=round(st2.usage, 4), perplexity=round(st2.perplexity, 1))
        both = st.counts + st2.counts
        usage, perplexity = codebook_usage(both)
        emit(bench="codebook_usage", set="both", clips=len(more) + len(held), tokens=int(both.sum()),
             codebook_size=k, usage=round(usage, 4), perplexity=round(perplexity, 1))

    # ------------------------------------------------------------ reconstruction vs baselines
    if "reconstruction" not in skip:
        rng = np.random.default_rng(0)
        train_rows = torch.cat([slices(tok, load_audio(f, target_rate=tok.sample_rate)) for f in train])
        pick = torch.from_numpy(rng.permutation(train_rows.shape[0])[: args.kmeans_vectors])
        fit = train_rows[pick].contiguous()
        t = time.perf_counter()
        # the baseline: plain Lloyd's k-means (no group balancing), seeded from random rows
        centers, _ = kmeans(fit, k, args.kmeans_iters, generator=torch.Generator().manual_seed(0))
        kmeans_s = time.perf_counter() - t
        dmel, bands, band_bits = fit_dmel(fit, tok.cfg.n_mels, fpt, int(bits))
        ours, km, dm = [], [], []
        for audio, c in zip(held_audio, codes, strict=True):
            rows = slices(tok, audio)
            target = unslice(rows, fpt)
            ours.append(rel_l1(tok.decode_features(c), target))
            km.append(rel_l1(unslice(centers[nearest_code(rows, centers)], fpt), target))
            dm.append(rel_l1(unslice(dmel(rows), fpt), target))
        common = {"bench": "reconstruction", "clips": len(held), "tokens_per_second": tps,
                  "bits_per_second": round(tps * bits, 1), "metric": "mean over clips of L1(log-mel) / clip log-mel range"}
        emit(**common, method="mmtok", rel_l1=round(statistics.mean(ours), 5), median=round(statistics.median(ours), 5))
        emit(**common, method="kmeans", K=k, fit_vectors=fit.shape[0], iters=args.kmeans_iters,
             fit_seconds=round(kmeans_s, 1), rel_l1=round(statistics.mean(km), 5), median=round(statistics.median(km), 5))
        emit(**common, method="dmel_uniform_bins", bands=bands, bits_per_band=band_bits,
             rel_l1=round(statistics.mean(dm), 5), median=round(statistics.median(dm), 5))
        emit(bench="reconstruction_ratio", mmtok_vs_kmeans=round(statistics.mean(ours) / statistics.mean(km), 3),
             mmtok_vs_dmel=round(statistics.mean(ours) / statistics.mean(dm), 3),
             clips_better_than_kmeans=sum(a < b for a, b in zip(ours, km, strict=True)))

    # ------------------------------------------------------------ speed, real-time factor, memory
    speech = torch.cat([a for a, f in zip(held_audio, held, strict=True) if "espeak" in f.name])
    n16 = int(CLIP_SECONDS * tok.sample_rate)
    speech = speech.repeat(math.ceil(n16 / speech.numel()))[:n16]
    clip = load_audio(speech, tok.sample_rate, target_rate=ENCODEC_RATE).numpy()  # (240000,) at 24 kHz
    x = torch.from_numpy(clip)
    if "speed" not in skip:
        ours_s, encodec_s = encode_speed(tok, x, args.repeats)
        emit(bench="encode_speed", clip_seconds=CLIP_SECONDS, input_rate=ENCODEC_RATE, threads=args.threads,
             mmtok_seconds=round(ours_s, 4), encodec_seconds=round(encodec_s, 4),
             speedup=round(encodec_s / ours_s, 1), mmtok_tokens_per_second=tps, encodec_tokens_per_second=75 * 2)
        c10 = tok.encode(x, ENCODEC_RATE)
        feat_s = timed(lambda: tok.decode_features(c10), args.repeats)
        wave_s, encodec_dec_s = decode_speed(tok, "auto", c10, x, max(1, args.repeats // 2))
        vocoder = ("learned vocoder" if tok.vocoder is not None else
                   f"NNLS mel inversion + torchaudio Griffin-Lim, {tok.cfg.griffin_lim_iters} iterations")
        emit(bench="realtime_factor", clip_seconds=CLIP_SECONDS, threads=args.threads,
             encode=round(ours_s / CLIP_SECONDS, 5), decode_features=round(feat_s / CLIP_SECONDS, 5),
             decode_waveform=round(wave_s / CLIP_SECONDS, 4), encodec_decode_waveform=round(encodec_dec_s / CLIP_SECONDS, 4),
             decode_speedup_vs_encodec=round(encodec_dec_s / wave_s, 1), vocoder=vocoder)
    if "memory" not in skip:
        emit(bench="peak_memory", clip_seconds=CLIP_SECONDS, what="peak RSS growth during one encode after a warm-up, fresh process (polled every 0.5 ms)",
             mmtok_mb=round(peak_mb("mmtok", args.model, clip, args.threads), 1),
             encodec_mb=round(peak_mb("encodec", args.model, clip, args.threads), 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
