"""The ``mmtok`` command: a thin layer over library functions.

    mmtok --version
    mmtok [--debug] COMMAND ...        (--debug or MMTOK_DEBUG=1: a traceback with every error)
    mmtok demo [--fast] [--out DIR] [--data DIR] [--seed N] [--device D] [--threads N] [--max-memory GB]
               [--no-progress] [--json]
    mmtok train-tokenizer {image,audio} --data DIR --out DIR [--steps N] [--resume] ...
    mmtok train-tokenizer text FILES --vocab-size N --out DIR
    mmtok train-tokenizer vocoder --cache DIR --out DIR [--features decoded --init-from RUN/best] [--attach DIR]
    mmtok tokenize docs.jsonl|rows.parquet|DATASET_DIR --out DIR [--workers N] [--shard-tokens N] [--part i/n]
                  [--strict] [--image MODEL] [--audio MODEL] [--text byte|FOLDER] [--engine local|ray [--ray-address ADDR]]
                  [--no-progress]
    mmtok export SHARDS --to parquet|datasets|bin --out PATH
    mmtok export-hf --run RUN --out DIR
    mmtok context DURATION [--preset gemini|lwm|chameleon|cosmos|mmtok|custom] [--fps F] [--json] ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mmtok  # its public names come on first use: importing this module does not import torch
from mmtok.context.command import add_command as add_context_command
from mmtok.core.command_line import VOCODER_CHOICES, HelpFormatter
from mmtok.core.command_output import (
    PIPE_CLOSED,
    drop_unread_output,
    guarded_output,
    one_line_usage_errors,
    one_line_warnings,
)
from mmtok.core.errors import MmtokError, UsageError, debugging, report_error
from mmtok.core.ranges import seed_arg, threads_arg

__all__ = ["main"]

# The parsers are built without torch (mmtok --help, a command's --help, --version and mmtok context's options answer
# at once); what needs torch (the commands' own modules) is imported when the command runs, inside main's handled
# region, so that Ctrl-C at any time is the one line and exit 130 of an interrupted command.


class _Parser(argparse.ArgumentParser):
    """The sub-commands' parsers: defaults in the help, and no abbreviated flags (``--step`` is not
    taken for ``--steps``: an abbreviation that works today would break when a flag is added)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _gib(text: str) -> float:
    """``--max-memory``: a finite number of GiB above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GiB, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of GiB above 0, got {text}")
    return value


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmtok.core.device import check_device_option
    from mmtok.demo import run_demo

    check_device_option(args.parser, args.device)  # one line, exit 2, before anything is read or written
    summary = run_demo(out=args.out, fast=args.fast, seed=args.seed, device=args.device, data=args.data,
                       max_memory_gb=args.max_memory, threads=args.threads, progress=not args.no_progress,
                       log=sys.stderr if args.json else sys.stdout)  # with --json, stdout is the JSON alone
    if args.json:
        print(json.dumps(summary))
    return 0


def _cmd_train_tokenizer(args: argparse.Namespace) -> int:
    rest = list(args.options)
    if args.modality == "image":
        from mmtok.image.train import main as train_main
    elif args.modality == "audio":
        from mmtok.audio.train import main as train_main
    elif args.modality == "text":
        from mmtok.stream.text_command import main as train_main
    elif args.modality == "vocoder":
        from mmtok.audio.vocoder_train import main as vocoder_main

        return vocoder_main(rest, debug=args.debug)
    else:  # pragma: no cover - argparse restricts choices
        raise SystemExit(f"unknown modality {args.modality!r}")
    return int(train_main(rest) or 0)


TRAINERS = ("image", "audio", "text", "vocoder")


def _cmd_prune_codebook(args: argparse.Namespace) -> int:
    if args.modality == "image":
        from mmtok.image.prune import main as prune_main
    else:
        from mmtok.audio.prune import main as prune_main
    return int(prune_main(list(args.options), debug=args.debug) or 0)


def _part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part takes i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--part i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _cmd_train(args: argparse.Namespace) -> int:
    from mmtok.lm.command import main as train_main

    return int(train_main(list(args.options)) or 0)


def _cmd_sample(args: argparse.Namespace) -> int:
    from mmtok.lm.sample import main as sample_main

    return int(sample_main(list(args.options)) or 0)


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from mmtok.data.corpus import LocalEngine, nothing_tokenized, part_folder, tokenize_corpus
    from mmtok.data.ray_engine import RayEngine
    from mmtok.data.tokenizer_spec import TokenizerSpec

    if args.ray_address is not None and args.engine != "ray":
        raise UsageError(f"--ray-address {args.ray_address} is for --engine ray, and the engine is {args.engine}; "
                         "add --engine ray, or leave --ray-address out; nothing was read or written")
    start = time.perf_counter()
    engine = RayEngine(address=args.ray_address) if args.engine == "ray" else LocalEngine(args.workers)
    manifest = tokenize_corpus(
        args.corpus,
        args.out,
        tokenizers=TokenizerSpec(text=args.text, image=args.image, audio=args.audio, video=args.video),
        workers=args.workers,
        shard_tokens=args.shard_tokens,
        part=args.part,
        strict=args.strict,
        progress=not args.no_progress,
        engine=engine,
        restart=args.restart,
        allow_outside=args.allow_outside,
        detect_media=True,
    )
    seconds = time.perf_counter() - start
    used = {k: v for k, v in (manifest.get("tokenizers") or {}).items() if v}
    print("tokenizers: " + ", ".join(f"{k}={v}" for k, v in used.items()), file=sys.stderr)
    if args.part is None and (part := manifest.get("part")) and part[1] > 1:  # RANK/WORLD_SIZE chose it: said
        i, n = part
        print(f"part {i}/{n} (RANK and WORLD_SIZE in the environment): lines {i + 1}, {i + 1 + n}, {i + 1 + 2 * n}, "
              f"... into {part_folder(args.out, (i, n))}; --part 0/1 tokenizes the whole corpus", file=sys.stderr)
    print(json.dumps({
        "docs": manifest["docs"], "tokens": manifest["tokens"]["total"], "shards": len(manifest["shards"]),
        "skipped": len(manifest["skipped"]), "silent_audio": manifest.get("silent_audio", 0), "seconds": round(seconds, 3),
    }))
    unread = nothing_tokenized(manifest, args.corpus)
    if unread:  # as for a file encode cannot use: said, exit 2, what was written stays
        print(f"mmtok: error: {unread}", file=sys.stderr)
        return 2
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mmtok.data.export import export_shards

    print(json.dumps(export_shards(args.shards, to=args.to, out=args.out)))
    return 0


def _cmd_export_hf(args: argparse.Namespace) -> int:
    from mmtok.lm.hf import export_hf

    print(json.dumps(export_hf(args.run, args.out)))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from mmtok.info import describe, format_info

    d = describe(args.path)
    print(json.dumps(d) if args.json else format_info(d))
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from mmtok.codefile import encode_main

    return encode_main(args)


def _cmd_decode(args: argparse.Namespace) -> int:
    from mmtok.codefile import decode_main

    return decode_main(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from mmtok.evaluate import eval_main

    return eval_main(args)


def _add_tokenize(sub: Any) -> None:
    tok = sub.add_parser("tokenize", help="tokenize a corpus of interleaved documents into shards")
    tok.add_argument("corpus", help='JSONL, one {"segments": [...]} document per line; or OBELICS-layout rows '
                     "(texts/images lists) in a .parquet file or a datasets folder")
    tok.add_argument("--out", required=True, metavar="DIR", help="folder for the shards and manifest.json")
    tok.add_argument("--workers", type=int, default=1, metavar="N", help="tokenizing processes (output is the same for any)")
    tok.add_argument("--shard-tokens", type=int, default=1 << 24, metavar="N", help="a shard closes at this many tokens")
    tok.add_argument("--part", type=_part, default=None, metavar="i/n", help="i/n: tokenize only part i of n (default: "
                     "RANK/WORLD_SIZE under torchrun)")
    tok.add_argument("--strict", action="store_true", help="stop at the first bad document instead of skipping it "
                     "(a JSONL corpus: every line's JSON, segments and media paths are checked before any is tokenized)")
    tok.add_argument("--text", default="byte", metavar="byte|FOLDER", help="byte, or a BPE folder from 'mmtok train-tokenizer text'")
    tok.add_argument("--image", default=None, metavar="MODEL", help="image tokenizer: shipped name, folder or "
                     "module:callable (default: the shipped one if the corpus has images)")
    tok.add_argument("--audio", default=None, metavar="MODEL", help="audio tokenizer: shipped name, folder or "
                     "module:callable (default: the shipped one if the corpus has sound)")
    tok.add_argument("--video", default=None, metavar="MODEL", help="video tokenizer: video (the shipped image tokenizer at 1 fps), folder or module:callable")
    tok.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                     help="no progress bar (--quiet says the same)")
    tok.add_argument("--restart", action="store_true", help="discard the shards an earlier run left in --out and "
                     "start over (a resume onto an edited corpus is refused without it)")
    tok.add_argument("--allow-outside", action="store_true", help="let media paths lead outside the corpus's "
                     "folder (absolute paths, .., symlinks); default: such documents are skipped")
    tok.add_argument("--engine", default="local", choices=["local", "ray"], help="local processes, or Ray Data "
                     "(pip install 'mmtok[ray]'; --workers is ignored): the shards are the same")
    tok.add_argument("--ray-address", default=None, metavar="ADDR", help="with --engine ray: a running Ray cluster "
                     "(ray://HOST:10001 or auto); default: start a local one with 2 CPUs")
    tok.set_defaults(func=_cmd_tokenize)


def _add_exports(sub: Any) -> None:
    ex = sub.add_parser("export", help="write shards as parquet, a datasets folder or a flat tokens.bin")
    ex.add_argument("shards", help="a folder from 'mmtok tokenize'")
    ex.add_argument("--to", required=True, choices=["parquet", "datasets", "bin"], help="the format")
    ex.add_argument("--out", required=True, metavar="PATH", help="a .parquet file, or a folder (datasets, bin)")
    ex.set_defaults(func=_cmd_export)

    hf = sub.add_parser("export-hf", help="a trained run as a transformers LlamaForCausalLM folder")
    hf.add_argument("--run", required=True, metavar="RUN", help="a run folder from 'mmtok train' (or a checkpoint)")
    hf.add_argument("--out", required=True, metavar="DIR", help="folder for config.json, model.safetensors, mmtok_vocab.json")
    hf.set_defaults(func=_cmd_export_hf)

    info = sub.add_parser("info", help="what a shard folder, a training run or a checkpoint holds")
    info.add_argument("path", metavar="PATH",
                      help="a folder from 'mmtok tokenize', 'mmtok train' or 'mmtok train-tokenizer' (its step of "
                      "--steps, a damaged train state, what --resume does), a checkpoint folder, a shipped name, "
                      "a code file from 'mmtok encode', or what 'mmtok export' wrote (a .parquet file, a datasets "
                      "or bin folder)")
    info.add_argument("--json", action="store_true", help="one JSON object instead of aligned lines")
    info.set_defaults(func=_cmd_info)


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="every capability end to end on example media, into an HTML page",
                          description="Tokenize and rebuild images and sounds, interleave, shard, train a tiny "
                          "model, sample media, plan video context and measure its growth; writes OUT/index.html.")
    demo.add_argument("--fast", action="store_true", help="a smaller, quicker run")
    demo.add_argument("--out", default="mmtok-demo", help="folder for the demo's outputs: new, empty, or one an "
                      "earlier demo wrote (it is rewritten); a folder holding anything else is refused")
    demo.add_argument("--data", default=None, metavar="DIR", help="folder of images, sounds and videos to show, "
                      "at least one image and one sound; hidden files are passed over and files that cannot be "
                      "read are left out, named on the page (default: the example media shipped with mmtok, "
                      "examples/data in a checkout)")
    demo.add_argument("--seed", type=seed_arg, default=0, help="random seed, in [0, 2**32)")
    demo.add_argument("--max-memory", type=_gib, default=2.0, metavar="GB",
                      help="memory budget (GiB) of the context-growth measurement: lengths whose estimated step "
                      "would pass it are skipped, with the reason on the page")
    demo.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    demo.add_argument("--threads", type=threads_arg, default=None, metavar="N",
                      help="CPU threads for torch (default: torch's choice)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON line on stdout; the "
                      "step lines go to stderr")
    demo.set_defaults(func=_cmd_demo, parser=demo)


def _add_codefile(sub: Any) -> None:
    """``mmtok encode`` and ``mmtok decode`` (:mod:`mmtok.codefile`)."""
    commands = (
        ("encode", _cmd_encode, "FILE", "images, sounds and videos, or folders of them (searched through their "
         "subfolders)", "images, sounds and videos -> code files (DIR/FILE.npz, e.g. photo.jpg.npz), with the shipped tokenizers or others",
         "Encode each image, sound or video (by its extension; a video's soundtrack too) to DIR/FILE.npz (photo.jpg -> photo.jpg.npz): the codes "
         "and what made them (kind, model version, vocabulary fingerprint). A folder's media land in the same "
         "subfolders of DIR. A code file (or an empty file) already there is replaced; anything else under that name stops the run "
         "before any work. A file that fails is reported and the others go on."),
        ("decode", _cmd_decode, "CODES", "code files (.npz) from 'mmtok encode', or folders of them",
         "code files from 'mmtok encode' -> images (.png), sounds (.wav) and videos (.mp4)",
         "Decode each code file to DIR/FILE.decoded.png (photo.jpg.npz -> photo.jpg.decoded.png), .wav (32-bit float, nothing clipped) or .mp4 (H.264 with "
         "the soundtrack as AAC) with the models that made it; codes from another model are refused, naming both. "
         "A file decode wrote before is replaced; anything else under that name stops the run before any work."),
    )
    for name, func, metavar, files_help, summary, description in commands:
        parser = sub.add_parser(name, help=summary, description=description)
        parser.add_argument("files", nargs="+", type=Path, metavar=metavar, help=files_help)
        parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the files written")
        for kind, what in (("image", "image tokenizer"), ("audio", "audio tokenizer (also a video's soundtrack)"),
                           ("video", "video tokenizer (the shipped one: the image tokenizer at 1 frame per second)")):
            parser.add_argument(f"--{kind}", default=kind, metavar="MODEL",
                                help=f"{what}: a shipped name, a checkpoint folder or package.module:callable "
                                f"(default: {kind})")
        if name == "decode":
            parser.add_argument("--vocoder", default="auto", choices=VOCODER_CHOICES,
                                help="how sounds come back (default: the model's learned vocoder when it has one)")
        parser.set_defaults(func=func)


def _add_eval(sub: Any) -> None:
    """``mmtok eval`` (:mod:`mmtok.evaluate`)."""
    parser = sub.add_parser(
        "eval", help="how well tokenizers rebuild your images, sounds and videos (PSNR, SSIM, STOI, PESQ, usage)",
        description="Encode and decode each image, sound or video (by its extension; folders are searched through "
        "their subfolders) and score what comes back against what the encoder read: PSNR and SSIM for pictures "
        "and frames; STOI, wideband PESQ (pip install mmtok[eval]) and the log-mel L1 for sounds, DNSMOS with "
        "--dnsmos. Then the means per model, codebook usage and perplexity, and with two or more models of a "
        "kind, each against the first, paired over the files. A file that fails is reported and the others go on.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="images, sounds and videos, or folders")
    for kind, what in (("image", "image tokenizer"), ("audio", "audio tokenizer (also a video's soundtrack)"),
                       ("video", "video tokenizer (the shipped one: the image tokenizer at 1 frame per second)")):
        parser.add_argument(f"--{kind}", action="append", metavar="MODEL",
                            help=f"{what}: a shipped name, a checkpoint folder or package.module:callable; give it "
                            f"again to compare models on the same files, each against the first (default: {kind})")
    parser.add_argument("--vocoder", default="auto", choices=VOCODER_CHOICES,
                        help="how sounds come back (default: the model's learned vocoder when it has one)")
    parser.add_argument("--dnsmos", action="store_true",
                        help="also DNSMOS P.835 of each decoded sound and of its original (speechmos, onnxruntime: pip install mmtok[eval])")
    parser.add_argument("--json", action="store_true", help="JSON lines: one per file and model, then the summaries")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw each file's scores per model (matplotlib) "
                        "to this file; .png is added to a name without an extension (.pdf, .svg, .eps and .ps work too: the "
                        "formats that carry its mark, so that a later run replaces the plot); "
                        "a folder, a file scored or inside a folder scored, or a file there that is not a plot "
                        "mmtok eval drew is refused")
    parser.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False,
        prog="mmtok",
        description="Multimodal tokenization: learned VQ codebooks for images and audio, "
        "interleaved token streams, and a small transformer over them.",
        epilog="Errors are one line; exit status 2: bad usage (a flag, file or folder refused), 1: a failure "
        "while running (a device this machine lacks, such as --device cuda without a GPU, too), 130: interrupted, "
        "141: its output's reader went away (piped into head).",
    )
    parser.add_argument("--version", action="version", version=f"mmtok {mmtok.__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or set MMTOK_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _add_demo(sub)

    tt = sub.add_parser(
        "train-tokenizer",
        help="train an image, audio or text tokenizer, or the audio vocoder (see 'mmtok train-tokenizer image --help')",
        description="Train a tokenizer; each trainer has its own options: 'mmtok train-tokenizer MODALITY --help'.",
    )
    tt.add_argument("modality", choices=TRAINERS, help="what to train")
    tt.add_argument("options", nargs=argparse.REMAINDER, help="options of that trainer")
    tt.set_defaults(func=_cmd_train_tokenizer)

    pc = sub.add_parser(
        "prune-codebook",
        help="keep only the codes a tokenizer's training data picks most (see 'mmtok prune-codebook audio --help')",
        description="Write a tokenizer with a smaller codebook: the codes its training data picks most, by count; "
        "each modality has its own options: 'mmtok prune-codebook MODALITY --help'.",
    )
    pc.add_argument("modality", choices=("image", "audio"), help="which tokenizer")
    pc.add_argument("options", nargs=argparse.REMAINDER, help="options of that modality")
    pc.set_defaults(func=_cmd_prune_codebook)

    _add_codefile(sub)
    _add_eval(sub)
    _add_tokenize(sub)
    _add_exports(sub)

    add_context_command(sub)

    tr = sub.add_parser("train", help="train the transformer on shards (see 'mmtok train --help')", add_help=False)
    tr.add_argument("options", nargs=argparse.REMAINDER, help="options of the trainer")
    tr.set_defaults(func=_cmd_train)

    sm = sub.add_parser("sample", help="sample text, images and sound from a trained run "
                        "(see 'mmtok sample --help')", add_help=False)
    sm.add_argument("options", nargs=argparse.REMAINDER, help="options of the sampler")
    sm.set_defaults(func=_cmd_sample)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    if argv and argv[0] in ("train", "sample"):
        # these commands own all their options (argparse's REMAINDER would not pass leading --flags)
        return argparse.Namespace(func=_cmd_train if argv[0] == "train" else _cmd_sample, options=argv[1:])
    if len(argv) > 1 and argv[0] == "train-tokenizer" and argv[1] in TRAINERS:
        return argparse.Namespace(func=_cmd_train_tokenizer, modality=argv[1], options=argv[2:])
    ns, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, so the hint names its --help
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        name = next((a for a in argv if a in sub.choices), None)
        (sub.choices[name] if name else parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return ns


READS_PICTURES = frozenset({"encode", "eval", "tokenize", "train-tokenizer", "prune-codebook", "demo", "info"})


def _check_environment() -> None:
    """The environment variables the library reads, checked once before the command's work: a bad
    ``MMTOK_MAX_IMAGE_PIXELS`` is one refusal, not one failure per image."""
    from mmtok.image.io import PIXELS_ENV, pixel_limit

    if os.environ.get(PIXELS_ENV, "").strip():
        try:
            pixel_limit()
        except MmtokError as e:
            raise UsageError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmtok`` console script: exit 0, 2 (bad usage), 1 (a failure while running), 130
    (interrupted), 141 (the reader of its output went away, as ``head`` does: nothing more is said or done).

    Errors are one line on stderr (``mmtok: error: ...``); ``--debug`` or ``MMTOK_DEBUG=1`` adds the traceback.
    Warnings are one line too (``mmtok: warning: ...``).
    Bad options raise ``SystemExit(2)`` as argparse does; other refusals return 2.
    """
    start = time.perf_counter()
    argv = list(argv) if argv is not None else sys.argv[1:]
    debug = debugging()
    while argv and argv[0] == "--debug":
        argv, debug = argv[1:], True
    try:
        with one_line_usage_errors(), one_line_warnings(), guarded_output():
            parser = build_parser()  # no torch: the command's own modules come when it runs
            args = _parse(parser, argv)
            args.debug = debug  # the commands that say their own errors show the traceback too
            if getattr(args, "func", None) is None:
                parser.print_help()
                return 0
            if getattr(args, "command", None) in READS_PICTURES:
                _check_environment()
            return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: stop there, quietly
        drop_unread_output()
        return PIPE_CLOSED
    except KeyboardInterrupt:
        print(f"mmtok: interrupted after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return 130
    except Exception as e:  # the command line's last word: one line, not a traceback
        return report_error(e, debug=debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
