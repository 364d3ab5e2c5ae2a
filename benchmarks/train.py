"""Training throughput: our transformer vs Hugging Face GPT-2, side by side in one run.

Both models get the same width, depth, heads, vocabulary, sequence length, batch
and precision; ours uses full multi-head attention here (n_kv_head = n_head) so
the parameter counts match (both are printed; ours is ~2.5% larger at tiny: its SwiGLU
hidden size is rounded up to a multiple of 64). Both run plain causal attention
through SDPA with no mask (ours gets no ``doc`` here, GPT-2 no padding mask), and
both compute the same cross-entropy from the returned logits. Each timed step is
forward + backward + AdamW on random ids; medians over interleaved repeats whose
order alternates (A B, B A, ...) so drift in machine load hits both alike
(``common.time_sides``; ``ratio_of`` names the statistic, ``timing``/``timings`` hold
min, median and n); ``median_pair_ratio`` is the median of the per-round ratios, a
second, noise-robust reading of the same comparison. On a GPU the script also
reports MFU for ours at bf16 with and without ``torch.compile``.

``--compile`` adds both models under ``torch.compile`` to the same rounds (a
ratio row for each pairing: eager vs eager, compiled vs compiled).

Beside the speed, each row carries the model's ``median_loss`` over its timed
steps, and each ratio row both models' (``mmtok_median_loss``, ``gpt2_median_loss``):
the same batch of random ids every step for both, so the two losses are comparable
(both fall as the models fit that one batch; no figure of language modelling).
Without ``transformers`` (``pip install mmtok[bench]``) a row names the missing peer
and only ours is timed.

Usage: ``python benchmarks/train.py [--preset tiny] [--seq-len 256] [--batch 8] [--steps 10] [--compile]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    RATIO_OF,
    Timing,
    check_peer,
    emit,
    pick_device,
    positives,
    preset,
    ratio,
    round_ratios,
    run_script,
    time_sides,
)

from mmtok.core.errors import UsageError
from mmtok.core.limits import said_bytes
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.peak import available_memory, gpu_peak_tflops, step_memory

WARMUP_STEPS = 3  # untimed steps per model first: the first calls of a compiled model compile it


def gpt2_sdpa(cfg: ModelConfig) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_seq_len, n_embd=cfg.d_model,
                    n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                    tie_word_embeddings=True, bos_token_id=None, eos_token_id=None)  # GPT-2's 50256 is outside vocab_size
    hf._attn_implementation = "sdpa"
    return GPT2LMHeadModel(hf)


def make_step(model: torch.nn.Module, ours: bool, device: torch.device, dtype: torch.dtype | None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # the same optimizer for both
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else None

    def step(ids: torch.Tensor) -> float:
        ctx = autocast if autocast is not None else torch.enable_grad()
        with ctx:
            logits = model(ids[:, :-1]) if ours else model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help=f"timed steps per model (after {WARMUP_STEPS} warmup steps)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true",
                    help="also time both models under torch.compile (same interleaved rounds)")
    return ap


def build_models(cfg: ModelConfig, device: torch.device, dtype: torch.dtype | None, *, gpt2: bool,
                 compile_too: bool) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """({name: model}, {name: step}) for ours, GPT-2 (when ``gpt2``) and, with ``compile_too``, compiled twins."""
    models: dict[str, torch.nn.Module] = {"mmtok": Transformer(cfg).to(device)}
    if gpt2:
        models["gpt2"] = gpt2_sdpa(cfg).to(device)
    steps = {name: make_step(m, name == "mmtok", device, dtype) for name, m in models.items()}
    if compile_too:
        for name in list(models):
            twin = Transformer(cfg).to(device) if name == "mmtok" else gpt2_sdpa(cfg).to(device)
            models[f"{name}+compile"] = twin
            steps[f"{name}+compile"] = make_step(torch.compile(twin), name == "mmtok", device, dtype)
    return models, steps


def run_rounds(steps: dict[str, Any], ids: torch.Tensor, device: torch.device, rounds: int) -> dict[str, Timing]:
    """Each model's :class:`common.Timing` of ``rounds`` training steps, its ``results`` the steps' losses:
    the models take turns (:func:`common.time_sides`, order alternating) after ``WARMUP_STEPS`` each."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    return time_sides({name: lambda fn=fn: fn(ids) for name, fn in steps.items()}, repeats=rounds,
                      warmup=WARMUP_STEPS, sync=sync)


def emit_rows(args: argparse.Namespace, common: dict[str, Any], models: dict[str, torch.nn.Module],
              timings: dict[str, Timing]) -> None:
    """One ``train_step`` row per model, and a ratio row per pairing (eager, compiled) when GPT-2 ran."""
    tokens = args.batch * args.seq_len
    med = {k: t.median for k, t in timings.items()}
    loss = {k: round(statistics.median(t.results), 4) for k, t in timings.items()}
    for name, m in models.items():
        impl, _, how = name.partition("+")
        emit({"bench": "train_step", "impl": impl, "compile": how == "compile", **common,
              "params": sum(p.numel() for p in m.parameters()), "seconds_per_step": round(med[name], 4),
              "tokens_per_s": round(tokens / med[name], 1), "median_loss": loss[name],
              "timing": timings[name].summary()})
    for how in ("", "+compile") if args.compile else ("",):
        if "gpt2" + how not in timings:
            continue
        ours, theirs = timings["mmtok" + how], timings["gpt2" + how]
        emit({"bench": "train_step", "metric": "ratio", "compile": bool(how), **common,
              "mmtok_over_gpt2_tokens_per_s": ratio(theirs.median, ours.median, 3), "ratio_of": RATIO_OF,
              "median_pair_ratio": round(statistics.median(round_ratios(theirs, ours)), 3), "steps": args.steps,
              "mmtok_median_loss": loss["mmtok" + how], "gpt2_median_loss": loss["gpt2" + how],
              "loss_on": "the same batch of random ids every step, for both",
              "timings": {"mmtok": ours.summary(), "gpt2": theirs.summary()}})


def mfu_rows(cfg: ModelConfig, ids: torch.Tensor, device: torch.device, args: argparse.Namespace,
             common: dict[str, Any]) -> None:
    """On a GPU: ours' MFU at bf16, eager and compiled."""
    tokens = args.batch * args.seq_len
    name = torch.cuda.get_device_name(device)
    peak = gpu_peak_tflops(name)
    for compiled in (False, True):
        m = Transformer(cfg).to(device)
        net = torch.compile(m) if compiled else m
        timing = run_rounds({"mmtok": make_step(net, True, device, torch.bfloat16)}, ids, device, args.steps)["mmtok"]
        sec = timing.median
        row = {"bench": "train_mfu", "impl": "mmtok", "compile": compiled, **common,
               "tokens_per_s": round(tokens / sec, 1), "gpu": name, "timing": timing.summary()}
        if peak:
            row["mfu"] = round(m.flops_per_token(args.seq_len) * tokens / sec / (peak * 1e12), 4)
            row["peak_tflops_assumed"] = peak
        emit(row)


def check_memory(cfg: ModelConfig, device: torch.device, args: argparse.Namespace) -> None:
    """Refuse, before any model is built, a ``--seq-len`` and ``--batch`` whose training step (the estimate of
    :func:`mmtok.lm.peak.step_memory`, plain causal attention) needs more than ``device`` has available, with
    the longest ``--seq-len`` that fits at this ``--batch``; nothing is refused where that memory is unknown."""
    room = available_memory(device)
    if room is None:
        return
    floats = 2 if device.type == "cuda" else 4

    def need(seq: int) -> int:
        return sum(step_memory(cfg, batch_size=args.batch, seq_len=seq, several_docs=False, float_bytes=floats))

    if need(args.seq_len) <= room[0]:
        return
    lo, hi = 0, args.seq_len  # the longest --seq-len that fits at this --batch
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= room[0] else (lo, mid - 1)
    fix = f"give --seq-len {lo} or less, or a smaller --batch" if lo else "give a smaller --preset or --vocab"
    raise UsageError(f"--seq-len {args.seq_len} --batch {args.batch}: one training step of the {args.preset} model "
                     f"needs about {said_bytes(need(args.seq_len))}, but {said_bytes(room[0])} is {room[1]}; {fix}")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    positives(args, "--steps", "--batch", "--seq-len", "--vocab")
    preset("--preset", args.preset)
    device = pick_device(args.device)
    torch.manual_seed(0)
    base = ModelConfig.preset(args.preset, vocab_size=args.vocab, max_seq_len=args.seq_len + 1)
    cfg = ModelConfig.preset(args.preset, vocab_size=args.vocab, max_seq_len=args.seq_len + 1,
                             n_kv_head=base.n_head)
    check_memory(cfg, device, args)
    emit({"bench": "machine", "platform": platform.platform(), "cpus": os.cpu_count(),
          "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(device),
          "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None})
    gpt2 = check_peer("train_step", "transformers")
    dtype = torch.bfloat16 if device.type == "cuda" else None
    models, steps = build_models(cfg, device, dtype, gpt2=gpt2, compile_too=args.compile)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), device=device)
    timings = run_rounds(steps, ids, device, args.steps)
    common = {"preset": args.preset, "seq_len": args.seq_len, "batch": args.batch, "vocab": args.vocab,
              "precision": "bf16 autocast" if dtype else "float32", "device": str(device)}
    emit_rows(args, common, models, timings)
    if device.type == "cuda":
        mfu_rows(cfg, ids, device, args, common)


if __name__ == "__main__":
    sys.exit(run_script(main))
