"""Grammar-constrained generation: sampled media always decodes.

:func:`generate` samples with the model's KV cache under the masks of
:class:`~mmtok.lm.grammar.Grammar` (which also tracks the 3-D positions
``rope_3d`` models need); :func:`sample_run` is ``mmtok sample``: a trained run,
a prompt, and a picture or sound written from what was sampled (:mod:`~mmtok.lm.sample_output`). Requests
the context cannot hold stop before any model work (:class:`~mmtok.core.errors.ContextTooShortError`), and so
does a file in the way that ``mmtok sample`` did not write: a user's own file is never replaced.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmtok.core.device import pick_device
from mmtok.core.errors import ContextTooShortError, UsageError
from mmtok.core.protocol import GridTokenizer, MediaTokenizer, RateTokenizer
from mmtok.core.ranges import seed_arg
from mmtok.lm.grammar import DONE, TEXT, Grammar, audio_segment_len, image_segment_len
from mmtok.lm.model import KVCache, Transformer
from mmtok.lm.sample_checks import check_limits, check_seed
from mmtok.lm.sample_checks import check_sampling as _check_sampling
from mmtok.lm.sample_checks import int_pair as _int_pair
from mmtok.lm.sample_output import check_output, write_image, write_sound
from mmtok.stream.interleave import Interleaver

__all__ = ["Sampled", "audio_tokens_of", "check_fits", "generate", "image_grid_of", "sample_run", "segment_cost"]

DEFAULT_IMAGE_GRID = (16, 16)  # rows, columns of a sampled image when the image tokenizer has no grid
DEFAULT_AUDIO_TOKENS = (1, 250)  # fewest, most codes of a sampled audio segment without a token rate
DEFAULT_AUDIO_SECONDS = 5.0  # longest sampled audio segment, in seconds of the audio tokenizer's rate


def _filter(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def image_grid_of(tok: MediaTokenizer | None) -> tuple[int, int]:
    """The grid a sampled image gets by default: the image tokenizer's ``grid``, else 16×16.

    >>> image_grid_of(None)
    (16, 16)
    """
    if isinstance(tok, GridTokenizer):
        h, w = tok.grid
        return int(h), int(w)
    return DEFAULT_IMAGE_GRID


def audio_tokens_of(tok: MediaTokenizer | None) -> tuple[int, int]:
    """Fewest and most codes of a sampled audio segment by default: 1 to ``DEFAULT_AUDIO_SECONDS`` of
    the audio tokenizer's ``tokens_per_second``, else 1 to 250.

    >>> audio_tokens_of(None)
    (1, 250)
    """
    if isinstance(tok, RateTokenizer):
        return 1, max(1, round(DEFAULT_AUDIO_SECONDS * float(tok.tokens_per_second)))
    return DEFAULT_AUDIO_TOKENS


@dataclass(frozen=True)
class _Picker:
    """How the next id is chosen from masked logits: greedy at temperature 0, else sampled.

    A temperature float32 cannot hold (below about 1e-45, where it would be 0, or above 3.4e38, where it would be
    inf) scales the logits in float64, where it goes to its limit: as greedy for a vanishing one, every allowed
    token alike for a huge one (after ``top_k`` and ``top_p``).
    """

    temperature: float
    top_k: int | None
    top_p: float | None
    generator: torch.Generator

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:  # (B, V) -> (B,)
        if self.temperature == 0:
            return logits.argmax(-1)
        if _float32_cannot_hold(self.temperature):
            logits = logits.double()
        top = logits.max(-1, keepdim=True).values  # (B, 1): scaled from 0 down, a tiny temperature cannot overflow
        probs = _filter((logits - top) / self.temperature, self.top_k, self.top_p).softmax(-1)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0]


def _float32_cannot_hold(value: float) -> bool:
    """Whether ``value`` (positive, finite) is 0 or inf in float32, as a float32 tensor's arithmetic takes it.

    >>> _float32_cannot_hold(1e-300), _float32_cannot_hold(1e300), _float32_cannot_hold(0.7)
    (True, True, False)
    """
    narrowed = float(torch.tensor(value, dtype=torch.float32))
    return narrowed == 0 or math.isinf(narrowed)


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    return gen


def _prompt(il: Interleaver, prompt: str | Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's ids ``[P]`` and (time, row, column) positions ``[P, 3]``, left open for more."""
    stream = il.encode([prompt] if isinstance(prompt, str) else list(prompt))
    ids, pos_thw = stream.ids, stream.pos_thw
    if il.eos:  # continue the document rather than after its end
        ids, pos_thw = ids[:-1], pos_thw[:-1]
    return ids, pos_thw


def _check_vocab(model: Transformer, il: Interleaver) -> None:
    """Refuse an interleaver whose ids are not the model's: another size (:class:`UsageError`), or, when the
    model knows the vocabulary it was trained on (``model.vocab``), another layout."""
    if model.vocab is not None:
        il.vocab.check_same(model.vocab, what="the model")
    if il.vocab.size != model.cfg.vocab_size:
        raise UsageError(f"generate: the interleaver's vocabulary has {il.vocab.size} ids but the model's has "
                         f"{model.cfg.vocab_size}: build the interleaver with the tokenizers the model was "
                         "trained with")


def _round_up(n: int, k: int = 64) -> int:
    return -(-n // k) * k


def segment_cost(force: str, image_grid: tuple[int, int], audio_tokens: tuple[int, int]) -> int:
    """Fewest tokens a forced segment takes: an image its whole grid with an ``<eol>`` per row and
    ``<boi>``/``<eoi>``; audio its fewest codes and ``<boa>``/``<eoa>``.

    >>> segment_cost("image", (16, 16), (1, 250)), segment_cost("audio", (16, 16), (50, 250))
    (274, 52)
    """
    return image_segment_len(*image_grid) if force == "image" else audio_segment_len(audio_tokens[0])


def check_fits(context: int, prompt_len: int, force: str | None, image_grid: tuple[int, int],
               audio_tokens: tuple[int, int]) -> None:
    """Raise :class:`ContextTooShortError` when the prompt, and a forced segment after it, overflow ``context``.

    >>> check_fits(256, 8, "image", (16, 16), (1, 250))
    Traceback (most recent call last):
    ...
    mmtok.core.errors.ContextTooShortError: a 16×16 image after the 8-token prompt needs 282 tokens, but the model's context (max_seq_len) is 256: sample a smaller image grid (--image-grid, image_grid=), or train with a longer context (mmtok train --seq-len 320; TrainConfig(seq_len=320) from Python)
    """
    if prompt_len >= context:
        raise ContextTooShortError(
            f"the prompt is {prompt_len} tokens, but the model's context (max_seq_len) is {context}: shorten "
            f"the prompt (--prompt), or train with a longer context {_longer(prompt_len + 1)}")
    if force is None:
        return
    needed = prompt_len + segment_cost(force, image_grid, audio_tokens)
    if needed <= context:
        return
    if force == "image":
        what, fix = f"a {image_grid[0]}×{image_grid[1]} image", "a smaller image grid (--image-grid, image_grid=)"
    else:
        what, fix = f"audio of at least {audio_tokens[0]} codes", "fewer audio tokens (--audio-tokens MIN,MAX, audio_tokens=)"
    raise ContextTooShortError(
        f"{what} after the {prompt_len}-token prompt needs {needed} tokens, but the model's context "
        f"(max_seq_len) is {context}: sample {fix}, or train with a longer context {_longer(needed)}")


def _longer(tokens: int) -> str:
    """How to train a model whose context holds ``tokens``: on the command line and from Python."""
    n = _round_up(tokens)
    return f"(mmtok train --seq-len {n}; TrainConfig(seq_len={n}) from Python)"


def _budget(model: Transformer, prompt_len: int, max_new_tokens: int, force: str | None,
            image_grid: tuple[int, int], audio_tokens: tuple[int, int]) -> int:
    """How many tokens to sample: room for a forced segment, within the model's ``max_seq_len``.

    A forced image needs its whole grid; forced audio its fewest codes (the grammar closes it in
    time when the context runs short), and is given room for its most when there is some.
    """
    context = model.cfg.max_seq_len
    check_fits(context, prompt_len, force, image_grid, audio_tokens)
    if force is not None:
        most = image_segment_len(*image_grid) if force == "image" else audio_segment_len(audio_tokens[1])
        max_new_tokens = max(max_new_tokens, most)
    return min(max_new_tokens, context - prompt_len)


@torch.inference_mode()
def generate(
    model: Transformer,
    il: Interleaver,
    prompt: str | Sequence[Any] = "",
    *,
    max_new_tokens: int = 512,
    force: str | None = None,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    image_grid: tuple[int, int] | None = None,
    audio_tokens: tuple[int, int] | None = None,
) -> list[torch.Tensor]:
    """Sample continuations of ``prompt`` (a string or a document) under the grammar.

    ``force="image"`` opens ``<boi>`` right after the prompt and stops after
    ``<eoi>``; ``force="audio"`` likewise with ``<boa>``/``<eoa>``; ``None``
    runs free until ``<eos>`` or ``max_new_tokens``. Returns one 1-D id tensor
    per sample: the prompt's ids followed by the sampled ones, decodable with
    ``il.decode``; a sample that stopped before ``<eos>`` (at ``max_new_tokens``,
    or after a forced segment) with ``il.decode(ids, partial=True)``. ``image_grid`` (rows, columns of a sampled image) and
    ``audio_tokens`` (fewest, most codes of a sampled audio segment) default to
    :func:`image_grid_of` and :func:`audio_tokens_of` the interleaver's tokenizers.
    """
    if force not in (None, "image", "audio"):
        raise ValueError(f"force must be None, 'image' or 'audio', got {force!r}")
    _check_vocab(model, il)
    if force is not None and not il.vocab.has(force):
        raise UsageError(f"this model's vocabulary has no {force} codes (it was trained on shards without "
                         f"{force}): it cannot sample {'an image' if force == 'image' else 'audio'}")
    _check_sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                    num_samples=num_samples)
    check_seed(seed)
    image_grid, audio_tokens = check_limits(image_grid, audio_tokens)
    image_grid = image_grid_of(il.image) if image_grid is None else image_grid
    audio_tokens = audio_tokens_of(il.audio) if audio_tokens is None else audio_tokens
    ids, pos_thw = _prompt(il, prompt)
    if not len(ids):
        raise UsageError("generate: the prompt is empty and the interleaver adds no <bos> (Interleaver(bos=False)): "
                         "give a prompt, or use an interleaver with bos=True")
    grammar = Grammar(il, image_grid=image_grid, audio_tokens=audio_tokens)
    steps = _budget(model, len(ids), max_new_tokens, force, image_grid, audio_tokens)
    pick = _Picker(temperature, top_k, top_p, _generator(seed))
    forced = {"image": il.BOI, "audio": il.BOA}.get(force or "")
    was_training = model.training
    model.eval()
    try:
        out = _sample(model, grammar, ids, pos_thw, steps=steps, num_samples=num_samples, forced=forced, pick=pick)
    finally:
        model.train(was_training)
    return [torch.cat([ids, torch.tensor(o, dtype=torch.long)]) for o in out]


def _sample(model: Transformer, grammar: Grammar, ids: torch.Tensor, pos_thw: torch.Tensor, *, steps: int,
            num_samples: int, forced: int | None, pick: _Picker) -> list[list[int]]:
    """The sampled ids of each sequence, up to ``steps`` of them, through the KV cache.

    With ``forced`` (the id of ``<boi>`` or ``<boa>``) every sequence opens that segment
    and is finished once it is closed.
    """
    device = next(model.parameters()).device
    b = num_samples
    states = [grammar.start(int(pos_thw[-1, 0]) + 1 if len(ids) else 0) for _ in range(b)]
    cache = KVCache.empty(model.cfg, b, device, next(model.parameters()).dtype)
    cur = ids.to(device)[None].expand(b, -1)
    cur_pos = _positions(model, pos_thw.to(device)[None].expand(b, -1, -1), len(ids), 0)
    out: list[list[int]] = [[] for _ in range(b)]
    for step in range(steps):
        logits = model(cur, pos=cur_pos, cache=cache)[:, -1].float().cpu()  # (B, V)
        allowed = torch.stack([grammar.allowed(s, steps - step) for s in states])  # (B, V)
        if step == 0 and forced is not None:
            allowed = torch.zeros_like(allowed)
            allowed[:, forced] = True
        nxt = pick(logits.masked_fill(~allowed, float("-inf")))  # (B,)
        new_pos = []
        for i, s in enumerate(states):
            new_pos.append(grammar.position(s))
            tok = int(nxt[i])
            if s.mode != DONE:
                out[i].append(tok)
            grammar.advance(s, tok)
            if forced is not None and s.mode == TEXT and step > 0:
                s.mode = DONE  # the forced segment is closed: this sample is finished
        if all(s.mode == DONE for s in states):
            break
        cur = nxt[:, None].to(device)
        pos_t = torch.tensor(new_pos, device=device)[:, None]  # (B, 1, 3)
        cur_pos = _positions(model, pos_t, 1, len(ids) + step)
    return out


def _positions(model: Transformer, pos_thw: torch.Tensor, t: int, offset: int) -> torch.Tensor:
    """3-D positions for rope_3d models, else 1-D stream positions ``offset .. offset+t-1``."""
    if model.cfg.rope_3d:
        return pos_thw
    b = pos_thw.shape[0]
    return torch.arange(offset, offset + t, device=pos_thw.device).expand(b, t)


@dataclass(frozen=True)
class Sampled:
    """What :func:`sample_run` made: the ids (prompt included), the stream pretty-printed, the files written."""

    ids: torch.Tensor
    pretty: str
    files: tuple[str, ...] = ()


def sample_run(
    run: str | os.PathLike[str],
    prompt: str = "",
    *,
    image_out: str | os.PathLike[str] | None = None,
    audio_out: str | os.PathLike[str] | None = None,
    max_new_tokens: int = 400,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    image_grid: tuple[int, int] | None = None,
    audio_tokens: tuple[int, int] | None = None,
    device: str | None = None,
    tokenizers: dict[str, str | None] | None = None,
) -> Sampled:
    """``mmtok sample``: continue ``prompt`` with a trained run; with ``image_out`` (PNG) or ``audio_out``
    (WAV) sample that medium after the prompt and write it (atomically). A file already there is replaced only
    when ``mmtok sample`` wrote it (one carrying :data:`~mmtok.lm.sample_output.MARK`: a PNG, WAV, FLAC, AIFF,
    CAF or RF64); any other is refused before the run is read.

    A request the run's context cannot hold raises :class:`ContextTooShortError`
    before anything is sampled; a ``max_new_tokens`` past it is cut to it, and that is said on stderr. Sampled sound is scaled down if it would clip.
    ``tokenizers`` (``{"image": NAME, ...}``) replaces the tokenizers the run recorded; a
    ``module:callable`` tokenizer is accepted only this way, never from the run's files.
    """
    from mmtok.data.tokenizer_spec import TokenizerSpec
    from mmtok.lm.runs import load_run
    from mmtok.lm.sample_tokenizers import check_run_vocab, run_interleaver, without_stale

    for target, flag in ((image_out, "--image-out"), (audio_out, "--audio-out")):
        if target is not None and not os.fspath(target):
            raise UsageError(f"{flag} ({flag[2:].replace('-', '_')}=) is empty: give a file name, or leave it out")
    if image_out is not None and audio_out is not None:
        raise ValueError("give image_out (--image-out) or audio_out (--audio-out), not both")
    _check_sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, num_samples=1)
    check_seed(seed)
    image_grid, audio_tokens = check_limits(image_grid, audio_tokens)
    for target in (image_out, audio_out):  # before minutes of sampling, not after
        if target is not None:
            check_output(Path(target), audio=target is audio_out)
    model, vocab, cfg = load_run(run, device=pick_device(device))
    shards = (cfg.get("train") or {}).get("data", "?")
    spec = TokenizerSpec.from_file_record(cfg.get("tokenizers") or {},
                                          where=f"{run} (its training settings, from its shards {shards})",
                                          overrides=tokenizers)
    il = run_interleaver(spec, run, shards, given=tokenizers or {})
    force = "image" if image_out else "audio" if audio_out else None
    il = without_stale(il, vocab, force, run)
    check_run_vocab(il, vocab, run, given=tokenizers or {})
    room = model.cfg.max_seq_len - len(_prompt(il, prompt)[0])
    if force is None and 0 < room < max_new_tokens:
        print(f"mmtok sample: --max-new-tokens {max_new_tokens} is more than the model's context (max_seq_len "
              f"{model.cfg.max_seq_len}) leaves after the {model.cfg.max_seq_len - room}-token prompt: at most "
              f"{room} token{'s are' if room > 1 else ' is'} sampled", file=sys.stderr)
    (ids,) = generate(model, il, prompt, max_new_tokens=max_new_tokens, force=force, temperature=temperature,
                      top_k=top_k, top_p=top_p, seed=seed, image_grid=image_grid, audio_tokens=audio_tokens)
    files: list[str] = []
    if force is not None:
        seg = il.decode(ids, media=True, partial=True)[-1]
        if image_out:
            write_image(Path(image_out), seg["image"])
            files.append(str(image_out))
        if audio_out:
            write_sound(Path(audio_out), seg["audio"], int(seg["sample_rate"] or 16000))
            files.append(str(audio_out))
    return Sampled(ids, il.pretty(ids, partial=True), tuple(files))


def main(argv: Sequence[str] | None = None) -> int:
    """``mmtok sample``: continue a text prompt with a trained run (:func:`sample_run`)."""
    import argparse

    from mmtok.core.command_line import HelpFormatter
    from mmtok.core.device import check_device_option

    ap = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok sample", description="Sample from a trained run.",
                                 formatter_class=HelpFormatter)
    ap.add_argument("--run", required=True, help="run folder from 'mmtok train' (or one of its checkpoints)")
    ap.add_argument("--prompt", default="", help="text to continue")
    ap.add_argument("--image-out", default=None,
                    help="sample an image after the prompt and write it here (PNG; .jpg and other extensions "
                    "Pillow knows in their format); a file there is replaced only if it is a PNG 'mmtok sample' "
                    "wrote (other formats carry no mark)")
    ap.add_argument("--audio-out", default=None,
                    help="sample audio after the prompt and write it here as 16-bit PCM (.wav, .flac, .aiff, .caf, "
                    ".rf64, .au or .w64); a file there is replaced only if 'mmtok sample' wrote it as WAV, FLAC, "
                    "AIFF, CAF or RF64 (other formats carry no mark)")
    ap.add_argument("--max-new-tokens", type=int, default=400,
                    help="most tokens to sample after the prompt when no medium is forced, at most what the "
                    "model's context leaves after the prompt (default: 400)")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="softmax temperature, ≥ 0 (default: 1.0; 0: greedy, as --greedy)")
    ap.add_argument("--greedy", action="store_true", help="always take the most likely allowed token")
    ap.add_argument("--top-k", type=int, default=None, help="sample among the K most likely tokens, K ≥ 1 (default: all)")
    ap.add_argument("--top-p", type=float, default=None,
                    help="sample among the most likely tokens whose probabilities reach P, 0 < P ≤ 1 (default: all)")
    ap.add_argument("--seed", type=seed_arg, default=None,
                    help="random seed, in [0, 2**32) (default: none, a new draw each run)")
    ap.add_argument("--image-grid", type=lambda t: _int_pair(t, "x"), default=None, metavar="ROWSxCOLS",
                    help="rows x columns of a sampled image (default: the image tokenizer's grid, else 16x16)")
    ap.add_argument("--audio-tokens", type=lambda t: _int_pair(t, ","), default=None, metavar="MIN,MAX",
                    help="fewest,most codes of a sampled audio segment "
                    f"(default: 1 to {DEFAULT_AUDIO_SECONDS:g} s of the audio tokenizer's rate, else 1,250)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    for key in ("text", "image", "audio", "video"):
        ap.add_argument(f"--{key}", default=None, metavar="MODEL",
                        help=f"{key} tokenizer to use instead of the run's (needed for a module:callable one)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.image_out and args.audio_out:
        ap.error("give --image-out or --audio-out, not both")
    if args.image_grid is not None and min(args.image_grid) < 1:
        ap.error(f"--image-grid needs at least one row and column, got {args.image_grid[0]}x{args.image_grid[1]}")
    if args.audio_tokens is not None and not 1 <= args.audio_tokens[0] <= args.audio_tokens[1]:
        ap.error(f"--audio-tokens MIN,MAX needs 1 <= MIN <= MAX, got {args.audio_tokens[0]},{args.audio_tokens[1]}")
    check_device_option(ap, args.device)
    temperature = 0.0 if args.greedy else args.temperature
    try:
        _check_sampling(max_new_tokens=args.max_new_tokens, temperature=temperature, top_k=args.top_k,
                        top_p=args.top_p, num_samples=1, flags=True)
    except ValueError as e:
        ap.error(str(e))
    out = sample_run(args.run, args.prompt, image_out=args.image_out, audio_out=args.audio_out,
                     max_new_tokens=args.max_new_tokens, temperature=temperature, top_k=args.top_k,
                     top_p=args.top_p, seed=args.seed, image_grid=args.image_grid, audio_tokens=args.audio_tokens,
                     device=args.device,
                     tokenizers={k: getattr(args, k) for k in ("text", "image", "audio", "video")})
    print(out.pretty)
    for f in out.files:
        print(f"wrote {f}")
    return 0
