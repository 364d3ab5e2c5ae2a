"""The ``mmtok`` command: a thin layer over library functions.

    mmtok --version
    mmtok demo [--fast] [--out DIR]
    mmtok train-tokenizer {image,audio} --data DIR --out DIR [--steps N] [--resume] ...
    mmtok train-tokenizer text FILES --vocab-size N --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import mmtok

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmtok.demo import run_demo

    summary = run_demo(out=args.out, fast=args.fast, seed=args.seed, device=args.device)
    if args.json:
        print(json.dumps(summary))
    return 0


def _cmd_train_tokenizer(args: argparse.Namespace) -> int:
    rest = list(args.options)
    if args.modality == "image":
        from mmtok.image_train import main as train_main
    elif args.modality == "audio":
        from mmtok.audio_train import main as train_main
    elif args.modality == "text":
        from mmtok.text import main as train_main
    else:  # pragma: no cover - argparse restricts choices
        raise SystemExit(f"unknown modality {args.modality!r}")
    return int(train_main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtok",
        description="Multimodal tokenization: learned VQ codebooks for images and audio, "
        "interleaved token streams, and a small transformer over them.",
    )
    parser.add_argument("--version", action="version", version=f"mmtok {mmtok.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the end-to-end demonstration and print its figures")
    demo.add_argument("--fast", action="store_true", help="a smaller, quicker run")
    demo.add_argument("--out", default="mmtok-demo", help="folder for the demo's outputs")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    demo.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    demo.set_defaults(func=_cmd_demo)

    tt = sub.add_parser(
        "train-tokenizer",
        help="train an image, audio or text tokenizer (see 'mmtok train-tokenizer image --help')",
        add_help=False,
    )
    tt.add_argument("modality", choices=["image", "audio", "text"], help="what to train")
    tt.add_argument("options", nargs=argparse.REMAINDER, help="options of that trainer")
    tt.set_defaults(func=_cmd_train_tokenizer)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmtok`` console script."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    start = time.perf_counter()
    try:
        return int(args.func(args) or 0)
    except mmtok.MmtokError as e:
        print(f"mmtok: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print(f"mmtok: interrupted after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
