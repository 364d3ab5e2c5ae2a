"""The tokenizer trainers on one device: a few steps of each, a resume, and the model each wrote, loaded back on
that device and on the CPU. One JSON object per check.

    python benchmarks/gpu_trainers.py --device cuda --dir DIR      (benchmarks/gpu_check.sh step 6 runs it)

- ``train_image``, ``train_audio``, ``train_vocoder``: ``mmtok train-tokenizer image|audio|vocoder --device``
  for ``--steps`` steps on data this script copies into ``DIR`` (the example pictures, speech and chirp); ok
  when the command exits 0, the run's train state says it took every step, the run records the device asked for, and each loss it wrote (summary.json, logs) is finite.
- ``resume_image``: the image run resumed for ``--more`` steps on the device; ok when the train state then says
  ``steps + more``.
- ``load_image``, ``load_audio``: the trained model loaded on the device and on the CPU: codes of the example
  picture or speech (the share equal between the two) and the largest difference of what they decode to (pixels;
  for audio the log-mel, the waveform's SNR beside it); ok when every code is in range, at least 99 % are equal
  and the decodes are within 1e-2.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import folder_to_fill, json_line, pick_device, positives, run_script

import mmtok

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"
PICTURES = ("astronaut.jpg", "camera.png", "chelsea.jpg", "coffee.jpg", "rocket.jpg")
SPEECH = ("speech_en.wav", "speech_de.flac")
QUIET = ["--no-progress", "--seed", "0", "--threads", "2"]


def write_data(folder: Path) -> dict[str, Path]:
    """The trainers' inputs under ``folder``: pictures, speech, and a vocoder corpus with its manifest."""
    pictures, speech, corpus = folder / "pictures", folder / "speech", folder / "vocoder-corpus"
    for sub in (pictures, speech, corpus / "audio"):
        sub.mkdir(parents=True, exist_ok=True)
    for name in PICTURES:
        shutil.copy(EXAMPLES / name, pictures / name)
    for name in SPEECH:
        shutil.copy(EXAMPLES / name, speech / name)
    rows = []
    for name, split, kind in (("speech_en.wav", "train", "speech"), ("chirp.ogg", "train", "music"),
                              ("speech_de.flac", "validation", "speech")):
        shutil.copy(EXAMPLES / name, corpus / "audio" / name)
        rows.append({"path": f"audio/{name}", "split": split, "source": "examples", "group": name, "kind": kind})
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"pictures": pictures, "speech": speech, "corpus": corpus}


def trainer_args(kind: str, data: dict[str, Path], out: Path, steps: int) -> list[str]:
    """``mmtok train-tokenizer KIND`` arguments for a small, quick run of ``steps`` steps."""
    if kind == "image":
        return ["image", "--data", str(data["pictures"]), "--out", str(out), "--steps", str(steps), "--batch-size",
                "8", "--crop", "64", "--codebook-size", "64", "--warmup", "1", "--init-crops", "64",
                "--save-every", str(steps)]
    if kind == "audio":
        return ["audio", "--data", str(data["speech"]), "--out", str(out), "--steps", str(steps), "--batch-size", "4",
                "--crop-tokens", "16", "--codebook-size", "32", "--encoder-channels", "32", "--decoder-channels", "32",
                "--warmup", "1", "--kmeans-vectors", "400", "--kmeans-iters", "2", "--kmeans-balance", "0",
                "--save-every", str(steps)]
    return ["vocoder", "--corpus", str(data["corpus"]), "--cache", str(out.parent / "vocoder-cache"), "--out", str(out),
            "--steps", str(steps), "--dim", "32", "--intermediate", "64", "--blocks", "2", "--batch-size", "4",
            "--segment-seconds", "0.3", "--warmup", "1", "--save-every", str(steps), "--log-every", "1",
            "--val-segments", "1", "--val-clips", "0"]


def train_state_step(out: Path) -> int | None:
    """The step a tokenizer trainer's train state says it reached, or None when it has none."""
    for config in (out / "train-state" / "config.json", *sorted(out.glob("*/train-state/config.json"))):
        if config.is_file():
            state = json.loads(config.read_text())
            step = state.get("train", {}).get("step", state.get("step"))
            return int(step) if step is not None else None
    return None


def _losses(value: Any, key: str = "") -> list[float]:
    """Every number under a key holding ``loss`` in ``value`` (a JSON object, nested)."""
    if isinstance(value, dict):
        return [v for k, sub in value.items() for v in _losses(sub, str(k))]
    if isinstance(value, list):
        return [v for sub in value for v in _losses(sub, key)]
    return [float(value)] if "loss" in key and isinstance(value, (int, float)) else []


def logged_losses(out: Path) -> list[float]:
    """Every loss the run wrote: in its ``summary.json`` and its ``*.jsonl`` logs."""
    rows: list[Any] = []
    if (out / "summary.json").is_file():
        rows.append(json.loads((out / "summary.json").read_text()))
    for log in sorted(out.rglob("*.jsonl")):
        for line in log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return _losses(rows)


def recorded_device(out: Path) -> str | None:
    """The device the run's ``summary.json`` (or its model's config) says it trained on."""
    for path in (out / "summary.json", out / "model" / "config.json"):
        if path.is_file():
            found = json.loads(path.read_text())
            device = found.get("device") or found.get("provenance", {}).get("device")
            if device:
                return str(device)
    return None


def train_check(name: str, argv: list[str], out: Path, device: str, steps: int) -> dict[str, Any]:
    """Run ``mmtok train-tokenizer ARGV --device DEVICE``; the check's row from what it wrote."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "mmtok.cli", "train-tokenizer", *argv, "--device", device, *QUIET],
                          capture_output=True, text=True)
    step, losses, trained_on = train_state_step(out), logged_losses(out), recorded_device(out)
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    on_device = trained_on is not None and trained_on.split(":")[0] == device.split(":")[0]
    row = {"check": name, "ok": proc.returncode == 0 and step == steps and finite and on_device, "device": device,
           "trained_on": trained_on, "exit": proc.returncode, "steps": step, "steps_asked": steps,
           "losses_logged": len(losses), "losses_finite": finite, "wall_s": round(time.time() - start, 1)}
    if not row["ok"]:
        row["stderr_tail"] = proc.stderr.strip().splitlines()[-5:]
    return row


def model_folder(out: Path) -> Path:
    """The tokenizer checkpoint a trainer wrote in ``out``."""
    for candidate in (out / "model", out / "tokenizer", out):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{out}: no tokenizer checkpoint (model/config.json) was written")


def load_check(name: str, kind: str, out: Path, device: str) -> dict[str, Any]:
    """The trained model on ``device`` and on the CPU: codes of the example input, and what the model decodes
    them to: pixels for an image model; for an audio model its log-mel (``decode_features``), since a fresh
    run has no learned vocoder and its sound comes from Griffin-Lim, whose iterations (momentum 0.99) carry
    the devices' FFT rounding on into the waveform (reported as ``wave_snr_db``, not judged)."""
    folder = model_folder(out)
    on_cpu, on_dev = mmtok.load(str(folder), device="cpu"), mmtok.load(str(folder), device=device)
    if kind == "image":
        picture = EXAMPLES / PICTURES[0]
        codes_cpu, codes_dev = on_cpu.encode(picture), on_dev.encode(picture)
    else:
        wave = mmtok.load_audio(EXAMPLES / SPEECH[0], target_rate=16000)
        codes_cpu, codes_dev = on_cpu.encode(wave, sample_rate=16000), on_dev.encode(wave, sample_rate=16000)
    codes_dev = codes_dev.cpu()
    same = float((codes_cpu == codes_dev).float().mean())
    in_range = bool(((codes_dev >= 0) & (codes_dev < on_dev.codebook_size)).all())
    row = {"check": name, "device": device, "codes": int(codes_dev.numel()), "codes_in_range": in_range,
           "codes_equal_share": round(same, 4)}
    if kind == "image":
        diff = float((on_cpu.decode(codes_cpu) - on_dev.decode(codes_cpu).cpu()).abs().max())
        row["decode_max_diff"] = diff
    else:
        diff = float((on_cpu.decode_features(codes_cpu) - on_dev.decode_features(codes_cpu).cpu()).abs().max())
        row["log_mel_max_diff"] = diff
        ref, other = on_cpu.decode(codes_cpu), on_dev.decode(codes_cpu).cpu()
        noise = float((other - ref).double().square().sum())
        row["wave_snr_db"] = None if noise == 0 else round(10 * math.log10(float(ref.double().square().sum()) / noise), 1)
    return {**row, "ok": in_range and same >= 0.99 and diff < 1e-2}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="the device to train on (default cuda)")
    ap.add_argument("--dir", required=True, help="a folder for the data and runs (made if absent)")
    ap.add_argument("--steps", type=int, default=30, help="steps of each trainer (default 30)")
    ap.add_argument("--more", type=int, default=10, help="steps the resumed image run adds (default 10)")
    args = ap.parse_args(argv)
    positives(args, "--steps", "--more")
    device = str(pick_device(args.device))
    root = folder_to_fill("--dir", args.dir)
    data = write_data(root / "data")
    rows = []
    for kind in ("image", "audio", "vocoder"):
        out = root / f"run-{kind}"
        shutil.rmtree(out, ignore_errors=True)
        rows.append(train_check(f"train_{kind}", trainer_args(kind, data, out, args.steps), out, device, args.steps))
        print(json_line(rows[-1]), flush=True)
        if kind == "image" and rows[-1]["ok"]:
            total = args.steps + args.more
            resumed = train_check("resume_image", [*trainer_args(kind, data, out, total), "--resume"], out, device,
                                  total)
            rows.append(resumed)
            print(json_line(resumed), flush=True)
        if kind in ("image", "audio") and rows[-1]["ok"]:
            rows.append(load_check(f"load_{kind}", kind, out, device))
            print(json_line(rows[-1]), flush=True)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(run_script(main))
