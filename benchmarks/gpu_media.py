"""The media tokenizers on one device against the CPU: one JSON object per check.

    python benchmarks/gpu_media.py --device cuda      (benchmarks/gpu_check.sh runs it)

- ``image_device``: the shipped image tokenizer encodes the example pictures on the device; the share of
  codes equal to the CPU's and the largest pixel difference of the decodes.
- ``audio_device``: the shipped audio tokenizer on the example speech: the share of codes equal to the CPU's,
  the largest waveform difference of the decodes from the same codes, a batch decode and a streamed decode
  (10 tokens at a time) against the whole decode on the device (largest difference, and the signal-to-difference
  ratio in dB), and decode speed there (the median of
  timed decodes, ``ratio_of``; ``timing``: min, median and n).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from common import RATIO_OF, json_line, pick_device, run_script, time_sides

import mmtok

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
DECODE_REPEATS = 5  # timed whole decodes on the device (after a warm-up one)


def sync(device: str) -> None:
    """Wait for ``device``'s queued work (that device's, not the current one's; nothing on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def image_check(device: str) -> dict:
    cpu, dev = mmtok.load("image"), mmtok.load("image", device=device)
    pictures = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".jpg", ".png"))
    codes_cpu, codes_dev = cpu.encode(pictures), dev.encode(pictures)
    same = float((codes_cpu == codes_dev.cpu()).float().mean())
    diff = float((cpu.decode(codes_cpu) - dev.decode(codes_cpu).cpu()).abs().max())
    return {"check": "image_device", "ok": same > 0.99 and diff < 1e-2, "device": device, "pictures": len(pictures),
            "codes_equal_share": round(same, 4), "decode_max_diff": diff}


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float | None:
    """How far ``other`` is from ``reference``, as the signal-to-difference ratio in dB (None: identical)."""
    noise = float((other.cpu() - reference.cpu()).double().square().sum())
    return None if noise == 0 else round(10 * math.log10(float(reference.double().square().sum()) / noise), 1)


def audio_check(device: str) -> dict:
    cpu, dev = mmtok.load("audio"), mmtok.load("audio", device=device)
    speech = mmtok.load_audio(EXAMPLES / "speech_en.wav", target_rate=16000)
    codes_cpu, codes_dev = cpu.encode(speech, sample_rate=16000), dev.encode(speech, sample_rate=16000)
    same = float((codes_cpu == codes_dev.cpu()).float().mean())
    whole = dev.decode(codes_cpu)
    diff_cpu = float((whole.cpu() - cpu.decode(codes_cpu)).abs().max())
    batch = dev.decode(torch.stack([codes_cpu, codes_cpu.flip(0)]))
    diff_batch = float((batch[0] - whole).abs().max())
    streamed = torch.cat(list(dev.decode_stream(codes_cpu.split(10))))
    diff_stream = float((streamed - whole).abs().max())
    decode = time_sides({"decode": lambda: dev.decode(codes_cpu)}, repeats=DECODE_REPEATS,
                        sync=lambda: sync(device))["decode"]
    ok = same > 0.99 and max(diff_cpu, diff_batch, diff_stream) < 1e-2
    return {"check": "audio_device", "ok": ok, "device": device, "tokens": int(codes_cpu.numel()),
            "codes_equal_share": round(same, 4), "decode_max_diff_vs_cpu": diff_cpu, "batch_max_diff": diff_batch,
            "stream_max_diff": diff_stream, "decode_snr_db_vs_cpu": snr_db(cpu.decode(codes_cpu), whole),
            "stream_snr_db_vs_whole": snr_db(whole, streamed), "decode_x_realtime": round(speech.numel() / 16000 / decode.median, 1),
            "ratio_of": RATIO_OF, "timing": decode.summary()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="the device to compare with the CPU (default cuda)")
    args = ap.parse_args(argv)
    device = str(pick_device(args.device))
    rows = [image_check(device), audio_check(device)]
    for row in rows:
        print(json_line(row), flush=True)  # a NaN difference (a failed check) as null: every line is JSON
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(run_script(main))
