"""Audio encode and decode time against clip length, side by side with EnCodec.

Speech clips are mostly 1-13 s long, and encoding runs in blocks of 5 s (the unit that keeps codes
the same however the audio is cut), so what a short clip or a clip's last part costs matters as
much as a 10 s clip. For each length, the clip (real speech: ``--wav``, repeated to length) is
encoded from 24 kHz with ours (resampling included) and with EnCodec 24 kHz, timed in turn
(:func:`common.time_sides`, ``--repeats`` calls each, one thread): the ``*_ms`` columns and the speed
ratios are of the medians (``ratio_of``) of ``n`` calls each, and ``timings`` holds each side's
``min_s``, ``median_s`` and ``n``. Without EnCodec installed, one ``skipped`` row says so and its
columns are null. The quality column: how many of our codes equal those of
the same clip followed by silence to a whole number of blocks, so that its last block is read
whole (how every clip's last block was read before it began to read only what its tokens need).
Decode: our codes to a waveform with the learned vocoder, against EnCodec's decoder on its own codes
of the same clip, timed in turn the same way.

Prints one JSON object per line (``bench: audio_length``).

Usage: ``python benchmarks/audio_lengths.py [--seconds 0.5 1 2 3 5.5 10] [--repeats 7] [--threads 1]``
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_baselines import ENCODEC_RATE, decode_timings, encode_timings
from common import RATIO_OF, check_peer, emit, existing_path, positive, ratio, run_script

import mmtok
from mmtok.audio.io import load_audio
from mmtok.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def whole_block_codes(tok: mmtok.AudioTokenizer, clip16: torch.Tensor) -> torch.Tensor:
    """Codes of ``clip16`` (16 kHz) read with its last block whole: the clip padded with zeros to a
    whole number of blocks, cut back to the clip's own tokens."""
    c = tok.cfg
    n = math.ceil(clip16.numel() / c.samples_per_token)
    block = c.block_tokens * c.samples_per_token
    padded = F.pad(clip16, (0, math.ceil(clip16.numel() / block) * block - clip16.numel()))
    return tok.encode(padded, tok.sample_rate)[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="audio", help="audio tokenizer: shipped name or folder")
    ap.add_argument("--wav", default=str(ROOT / "examples/data/speech_en.wav"), help="speech to repeat to length")
    ap.add_argument("--seconds", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0, 5.5, 10.0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for seconds in args.seconds:
        positive("--seconds", seconds)
    positive("--repeats", args.repeats)
    positive("--threads", args.threads)
    existing_path("--wav", args.wav, what="file")
    torch.set_num_threads(args.threads)
    encodec = check_peer("audio_length", "encodec")
    tok = mmtok.load(args.model)
    if not isinstance(tok, mmtok.AudioTokenizer):
        raise UsageError(f"--model {args.model} is not an audio tokenizer ({type(tok).__name__})")
    speech24 = load_audio(args.wav, target_rate=ENCODEC_RATE)
    for seconds in args.seconds:
        need = round(seconds * ENCODEC_RATE)
        clip24 = speech24.repeat(math.ceil(need / speech24.numel()))[:need]
        enc = encode_timings(tok, clip24, args.repeats, encodec=encodec)
        clip16 = load_audio(clip24, ENCODEC_RATE, target_rate=tok.sample_rate)
        codes = tok.encode(clip16, tok.sample_rate)
        same = int((codes == whole_block_codes(tok, clip16)).sum())
        dec = decode_timings(tok, "auto", codes, clip24, args.repeats, encodec=encodec)
        ours, ours_dec = enc["mmtok"].median, dec["mmtok"].median
        theirs, theirs_dec = (enc["encodec"].median, dec["encodec"].median) if encodec else (None, None)
        emit({"bench": "audio_length", "model": args.model, "seconds": seconds, "threads": args.threads,
              "encode_ms": round(ours * 1e3, 1), "encodec_ms": None if theirs is None else round(theirs * 1e3, 1),
              "speedup_vs_encodec": ratio(theirs, ours), "x_realtime": round(seconds / ours, 1),
              "tokens": codes.numel(), "codes_same_as_whole_last_block": same,
              "decode_ms": round(ours_dec * 1e3, 1),
              "encodec_decode_ms": None if theirs_dec is None else round(theirs_dec * 1e3, 1),
              "decode_speedup_vs_encodec": ratio(theirs_dec, ours_dec),
              "decode_x_realtime": round(seconds / ours_dec, 1), "ratio_of": RATIO_OF, "n": args.repeats,
              "timings": {"encode": {k: t.summary() for k, t in enc.items()},
                          "decode": {k: t.summary() for k, t in dec.items()}}})
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
