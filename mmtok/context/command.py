"""``mmtok context``: its options and the command, which prints :func:`mmtok.context.shipped.plan`'s plan.

    mmtok context 10m                                  # the shipped tokenizers' rate, the small model's costs
    mmtok context 1:30:00 --preset lwm --fps 1 --json

Building the options needs no torch (the preset names and their sources are data,
:mod:`~mmtok.context.presets`): ``mmtok context --help`` answers at once; the plan itself is made on running.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mmtok.context.presets import PRESET_NAMES, presets_help
from mmtok.core.command_line import RawHelpFormatter
from mmtok.core.errors import UsageError

__all__ = ["add_command", "context_main"]


def _resolution(text: str) -> tuple[int, int]:
    try:
        parts = [int(x) for x in text.lower().replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--resolution takes WIDTHxHEIGHT or a side (e.g. 640x360, 256), got {text!r}")
    return parts[1], parts[0]  # (H, W)


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1.5h``, ``m:ss`` or ``h:mm:ss`` (whole hours and minutes, minutes and
    seconds after the first part below 60, a fraction only on the seconds, no sign)."""
    bad = argparse.ArgumentTypeError(f"duration takes seconds, 90s, 5m, 1.5h, m:ss or h:mm:ss, got {text!r}")
    try:
        if ":" in text:
            parts = [part.strip() for part in text.split(":")]
            if (len(parts) > 3 or not all(part.isdigit() for part in parts[:-1])
                    or not parts[-1].replace(".", "", 1).isdigit()):
                raise bad
            values = [float(part) for part in parts]
            if max(values[1:]) >= 60:
                raise bad
            seconds = 0.0
            for value in values:
                seconds = seconds * 60 + value
            return seconds
        scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:].lower(), None)
        return float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise bad from None


def context_main(args: argparse.Namespace) -> int:
    """``mmtok context DURATION ...``: the plan as a table, or with ``--json`` one JSON object."""
    from mmtok.context.shipped import plan

    try:
        p = plan(
            args.duration, preset=args.preset, fps=args.fps, resolution=args.resolution, downsample=args.downsample,
            tokens_per_frame_overhead=args.frame_overhead, audio_tokens_per_second=args.audio_tokens_per_second,
            model=args.model, kv_dtype=args.kv_dtype, chunk_seconds=args.chunk_seconds,
        )
    except ValueError as e:
        raise UsageError(f"context: {e}") from e
    print(json.dumps(p.to_dict()) if args.json else p.table())
    return 0


def add_command(sub: Any) -> None:
    """``mmtok context`` on the command's subparsers."""
    ctx = sub.add_parser(
        "context", help="plan the context length a video takes and what that length costs",
        description="Tokens per frame/second/minute/total of a video under a tokenizer preset, which "
        "context windows (8k, 32k, 128k, 1M, 2M) hold it and how many seconds each holds, and the KV-cache "
        "memory and attention FLOPs of that length for a model size.",
        epilog="preset sources:\n" + presets_help(), formatter_class=RawHelpFormatter,
    )
    ctx.add_argument("duration", type=_duration, help="video length: seconds, 90s, 5m, 1.5h, m:ss or h:mm:ss")
    ctx.add_argument("--preset", default="mmtok", choices=PRESET_NAMES, help="tokenizer whose rate to use (default mmtok)")
    ctx.add_argument("--fps", type=float, default=None, help="frames sampled per second (default: the preset's)")
    ctx.add_argument("--resolution", type=_resolution, default=None, metavar="WxH", help="frame size tokenized (default: the preset's)")
    ctx.add_argument("--downsample", type=int, default=None, metavar="N", help="pixels per token side (patch size); "
                     "not for gemini (a fixed count) or mmtok (its image tokenizer's)")
    ctx.add_argument("--frame-overhead", type=int, default=None, metavar="N", help="separator tokens per frame, "
                     "in place of the preset's (lwm's 1, mmtok's <eof>; mmtok's <eol> per row stays); per latent "
                     "frame for cosmos (one per 8 frames)")
    ctx.add_argument("--audio-tokens-per-second", type=float, default=None, metavar="R", help="soundtrack tokens per second")
    ctx.add_argument("--chunk-seconds", type=float, default=None, metavar="S", help="count the video cut into chunks "
                     "of S seconds, as a {\"video\": ..., \"chunk_seconds\": S} segment of mmtok tokenize is: each "
                     "chunk adds its own markers (mmtok's <bov> <eov> <boa> <eoa>); not for cosmos")
    ctx.add_argument("--model", default="small", choices=["tiny", "small", "base"], help="transformer size for the costs")
    ctx.add_argument("--kv-dtype", default="bf16", choices=["fp32", "bf16", "fp16", "fp8", "int8"], help="KV-cache element type")
    ctx.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    ctx.set_defaults(func=context_main)
