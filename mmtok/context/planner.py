"""The context-length planner: how many tokens video costs, and what that length costs.

``plan(...)`` turns a duration, frame rate, resolution and tokenizer into tokens
per frame / second / minute / total, says which context windows (8k ... 2M)
hold it and how many seconds of such video each holds, and prices the length
for a transformer size: KV-cache memory and attention FLOPs.

Presets reproduce published rates (:mod:`~mmtok.context.presets`; sources in ``mmtok context --help``):

- ``gemini``: 258 tokens per frame at 1 fps, 32 audio tokens per second.
- ``lwm``: 257 tokens per frame (256 VQGAN codes of a 256×256 frame + 1 separator).
- ``chameleon``: 1,024 tokens per 512×512 image (16× downsampling).
- ``cosmos``: Cosmos-Tokenizer DV 8×16×16: 256 tokens per 8 frames at 256×256 (causal:
  the first frame is a latent frame of its own).
- ``custom``: only the numbers passed in (resolution, downsample, overheads).

The planner is arithmetic on numbers: it reads no model files. mmtok's own rate,
the ``"mmtok"`` preset, is :func:`mmtok_preset` of numbers that
:mod:`mmtok.context.shipped` reads from the shipped checkpoints' configs; its
``plan`` (``mmtok.plan``) is this ``plan`` with that preset added.

>>> p = plan(60, preset="gemini")
>>> p.tokens_per_frame, p.tokens_per_second, p.total_tokens
(258.0, 290.0, 17400)
>>> [w.name for w in p.windows if w.fits]
['32k', '128k', '1M', '2M']
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mmtok.context.counts import chunk_rate, counts, holds, latent_frame_tokens
from mmtok.context.presets import CUSTOM_SOURCE, PRESETS, Preset
from mmtok.lm.model_config import ModelConfig

__all__ = ["WINDOWS", "ContextPlan", "WindowFit", "count_params", "get_preset", "mmtok_preset", "plan"]

WINDOWS: dict[str, int] = {"8k": 8_192, "32k": 32_768, "128k": 131_072, "1M": 1_048_576, "2M": 2_097_152}
KV_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}  # bytes per cached key/value element
# sane ranges of the numbers a plan takes: beyond them a table is no budget (and runs to hundreds of digits)
MAX_DURATION_S = 365 * 24 * 3600  # a year of video
FPS_RANGE = (0.001, 1_000.0)  # one frame per 1,000 s to a high-speed camera
MAX_AUDIO_RATE = 1_000_000.0  # soundtrack tokens per second (raw 48 kHz samples are 48,000)
MAX_SIDE = 65_536  # pixels per frame side, and pixels per token side
MAX_OVERHEAD = 65_536  # separator tokens per frame
MAX_TEMPORAL = 1_024  # frames per latent frame (a tubelet's depth)

# how the interleaver lays video out (mmtok.stream.interleave): per frame h rows of w codes, each
# row closed by <eol>, the frame by <eof>; <bov> ... <eov> around the video; <boa> ... <eoa> per soundtrack piece
MMTOK_TOKENS_PER_ROW, MMTOK_TOKENS_PER_FRAME, MMTOK_TOKENS_PER_VIDEO, MMTOK_TOKENS_PER_AUDIO = 1, 1, 2, 2


def mmtok_preset(*, image_size: int | None, downsample: int, audio_tokens_per_second: float = 0.0,
                 source: str = "mmtok's layout", note: str = "", size_policy: str | None = None,
                 working_size: Callable[[int, int], tuple[int, int]] | None = None) -> Preset:
    """The ``"mmtok"`` preset for an image tokenizer of ``downsample`` pixels per token side.

    Frames are tokenized at ``image_size`` square (None: at their own resolution, which
    the plan then needs) and laid out as the interleaver lays video out: ``h*w`` codes +
    ``h`` ``<eol>`` + one ``<eof>`` per frame, ``<bov> <eov>`` per video. With the image
    tokenizer's ``size_policy`` ``"crop"`` or ``"pad"`` every frame becomes ``image_size``
    square whatever its size, so a plan refuses another ``resolution``; with ``"native"`` and
    ``working_size`` (``(width, height)`` -> the size the tokenizer reduces a frame to,
    :func:`mmtok.image.sizes.working_size`) a plan counts each frame at that size. ``downsample`` is the image
    tokenizer's, so a plan refuses another (a what-if is another ``mmtok_preset``).

    >>> p = plan(1, preset=mmtok_preset(image_size=64, downsample=16))
    >>> p.grid, p.tokens_per_frame, p.total_tokens
    ((4, 4), 21.0, 23)
    """
    fixed = (f"its image tokenizer's size_policy {size_policy!r} brings every frame to {image_size}x{image_size} "
             "first" if image_size is not None and size_policy in ("crop", "pad") else "")
    return Preset(
        "mmtok", source, fps=1.0, resolution=None if image_size is None else (image_size, image_size),
        downsample=downsample, tokens_per_row=MMTOK_TOKENS_PER_ROW, tokens_per_frame_overhead=MMTOK_TOKENS_PER_FRAME,
        tokens_per_video=MMTOK_TOKENS_PER_VIDEO, audio_tokens_per_second=audio_tokens_per_second,
        tokens_per_audio=MMTOK_TOKENS_PER_AUDIO, note=note,
        fixed_size=fixed, size_policy=size_policy, working_size=working_size,
        fixed_downsample=f"its image tokenizer's model fixes it at {downsample} pixels per token side",
    )


def get_preset(name: str) -> Preset:
    """The published :class:`Preset` called ``name``, or ``"custom"`` (only the numbers you pass)."""
    if name == "custom":
        return Preset("custom", CUSTOM_SOURCE, resolution=None)
    if name == "mmtok":
        raise ValueError("the 'mmtok' preset is read from the shipped checkpoints: use mmtok.plan "
                         "(mmtok.context.shipped.plan), or pass preset=mmtok_preset(...) with your numbers")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {[*PRESETS, 'mmtok', 'custom']}")
    return PRESETS[name]


@dataclass
class WindowFit:
    """How one context window relates to the planned video."""

    name: str  # "8k", "32k", "128k", "1M", "2M"
    tokens: int  # its size in tokens
    fits: bool  # the whole video (with its audio) fits
    seconds: float  # the longest such video it holds: a plan of that duration fits (whole frames, audio tokens)
    used: float  # fraction of the window the video fills (> 1: does not fit)


@dataclass
class ContextPlan:
    """What :func:`plan` returns; every count in tokens unless the name says otherwise."""

    preset: str
    source: str  # where the rate comes from
    duration_s: float
    fps: float
    resolution: tuple[int, int] | None  # (H, W) each frame is tokenized at; None: fixed count
    grid: tuple[int, int] | None  # (h, w) tokens per latent frame
    frames: int  # frames sampled
    latent_frames: int  # frames after temporal compression (= frames when temporal == 1)
    tokens_per_frame: float  # video tokens per sampled frame (overheads included)
    video_tokens_per_second: float
    audio_tokens_per_second: float
    tokens_per_second: float
    tokens_per_minute: float
    video_tokens: int
    audio_tokens: int
    total_tokens: int
    windows: list[WindowFit]
    model: str  # model size the costs are for
    n_params: int  # its parameters (embeddings included)
    vocab_size: int  # the vocabulary size it was priced with
    kv_dtype: str
    kv_cache_bytes: int  # keys + values of every layer for total_tokens, batch 1
    attention_flops: float  # causal attention score/value FLOPs of one forward pass over total_tokens
    train_flops: float  # forward + backward FLOPs over total_tokens (6N + 6 L T C per token: causal attention)
    note: str = ""
    vocab_source: str = ""  # where vocab_size comes from
    extra: dict[str, Any] = field(default_factory=dict)
    chunk_seconds: float | None = None  # the video cut into chunks of this many seconds, each with its markers

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (``mmtok context --json``): its fields (``resolution`` and ``grid`` as
        ``[height, width]``), with the frames' ``width`` and ``height`` named after ``resolution`` (None for a
        fixed count).

        >>> d = plan(1, preset="custom", resolution=(360, 640)).to_dict()
        >>> d["resolution"], d["width"], d["height"], d["grid"]
        ((360, 640), 640, 360, (23, 40))
        """
        items = list(asdict(self).items())
        at = [k for k, _ in items].index("resolution") + 1
        height, width = self.resolution or (None, None)
        return dict([*items[:at], ("width", width), ("height", height), *items[at:]])

    def table(self) -> str:
        """A readable table for the terminal."""
        res = (f"{self.resolution[1]}x{self.resolution[0]}" if self.resolution
               else "any resolution (the same token count for every frame)")
        rows = [
            ("preset", self.preset),
            ("source", self.source),
            ("duration", f"{_seconds(self.duration_s)} s at {self.fps:g} fps, {res}"
                         + (f", in chunks of {_seconds(self.chunk_seconds)} s" if self.chunk_seconds else "")),
            ("frames", f"{self.frames}" + (f" ({self.latent_frames} latent)" if self.latent_frames != self.frames else "")),
            ("tokens / frame", _rate(self.tokens_per_frame, 2)),
            ("tokens / second", f"{_rate(self.tokens_per_second, 1)} (video {_rate(self.video_tokens_per_second, 1)}"
                                f" + audio {_rate(self.audio_tokens_per_second, 1)})"),
            ("tokens / minute", _rate(self.tokens_per_minute, 0)),
            ("total tokens", f"{self.total_tokens:,} (video {self.video_tokens:,} + audio {self.audio_tokens:,})"),
            ("model", f"{self.model}: {self.n_params:,} parameters with a vocabulary of {self.vocab_size:,} ids"
                      + (f" ({self.vocab_source})" if self.vocab_source else "")),
            (f"KV cache ({self.model}, {self.kv_dtype})", _bytes(self.kv_cache_bytes)),
            ("attention FLOPs (fwd)", f"{self.attention_flops:.3g}"),
            ("train FLOPs (fwd+bwd)", f"{self.train_flops:.3g}"),
        ]
        if self.note:
            rows.append(("note", self.note))
        width = max(len(k) for k, _ in rows)
        out = [f"{k:<{width}}  {v}" for k, v in rows]
        out.append("")
        out.append(f"{'window':<8}{'tokens':>12}  {'fits':<5}{'holds':>16}  used")
        for w in self.windows:
            out.append(f"{w.name:<8}{w.tokens:>12,}  {'yes' if w.fits else 'no':<5}{_duration(w.seconds):>16}"
                       f"  {100 * w.used:.1f}%")
        return "\n".join(out)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _seconds(x: float) -> str:
    """``x`` seconds with thousands separators and no exponent up to a year (which ``:g`` shows as 3.1536e+07).

    >>> _seconds(31_536_000.0), _seconds(0.5), _seconds(36_000.0)
    ('31,536,000', '0.5', '36,000')
    """
    return f"{x:,.10g}"


def _rate(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` places, or three significant digits below 1 (a rate that is not 0 never shows as 0).

    >>> _rate(46080.0, 0), _rate(0.032, 1), _rate(0.0, 1)
    ('46,080', '0.032', '0.0')
    """
    return f"{x:.3g}" if 0 < abs(x) < 1 else f"{x:,.{decimals}f}"


def _duration(s: float) -> str:
    """``s`` seconds, rounded down (a window's "holds" shown must still fit): ``none`` when not even one frame
    fits, milliseconds or microseconds below a tenth of a second (which would show as ``0.0 s``).

    >>> _duration(0.0), _duration(0.008), _duration(25.0), _duration(4e-6)
    ('none', '8.0 ms', '25.0 s', '4.0 µs')
    """
    if math.isinf(s):
        return "unlimited"
    if s <= 0:
        return "none"
    if s < 1e-4:
        return f"{math.floor(s * 1e7) / 10:.1f} µs"
    if s < 0.1:
        return f"{math.floor(s * 1e4) / 10:.1f} ms"
    if s >= 3600:
        return f"{math.floor(s / 36) / 100:.2f} h"
    if s >= 60:
        return f"{math.floor(s / 6) / 10:.1f} min"
    return f"{math.floor(s * 10) / 10:.1f} s"


def _model_config(model: str | ModelConfig, vocab_size: int | None) -> tuple[str, ModelConfig]:
    """The name and config of ``model``: a :class:`ModelConfig` as it is, a size with ``vocab_size`` (if given)."""
    if isinstance(model, ModelConfig):
        return "custom", model
    cfg = ModelConfig.preset(model)
    return model, cfg if vocab_size is None else replace(cfg, vocab_size=vocab_size)


def _number(value: Any, what: str, lo: float, hi: float, *, integer: bool = False, above: bool = False) -> Any:
    """``value`` as an int (``integer``) or float once it is finite and in ``[lo, hi]`` (``(lo, hi]`` with
    ``above``); else a ValueError naming ``what`` (the argument and its ``mmtok context`` flag)."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and (value > lo if above else value >= lo) and value <= hi and (not integer or float(value).is_integer()))
    if not ok:
        kind = "an integer" if integer else "a number"
        bounds = f"above {_show(lo)} and at most {_show(hi)}" if above else f"from {_show(lo)} to {_show(hi)}"
        raise ValueError(f"{what} must be {kind} {bounds}, got {value!r}")
    return int(value) if integer else float(value)


def _show(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def count_params(cfg: ModelConfig) -> int:
    """Parameters of :class:`~mmtok.lm.model.Transformer` ``(cfg)``, without building it."""
    c, e = cfg.d_model, cfg.head_dim
    attn = c * (cfg.n_head + 2 * cfg.n_kv_head) * e + c * c
    mlp = 3 * c * cfg.hidden_dim
    per_layer = attn + mlp + 2 * c
    embed = cfg.vocab_size * c * (1 if cfg.tie_embeddings else 2)
    return cfg.n_layer * per_layer + c + embed


def plan(
    duration_s: float,
    *,
    preset: str | Preset,
    fps: float | None = None,
    resolution: tuple[int, int] | int | None = None,
    downsample: int | None = None,
    tokens_per_frame_overhead: int | None = None,
    audio_tokens_per_second: float | None = None,
    model: str | ModelConfig = "small",
    kv_dtype: str = "bf16",
    vocab_size: int | None = None,
    vocab_source: str = "",
    chunk_seconds: float | None = None,
) -> ContextPlan:
    """Plan the context a video of ``duration_s`` seconds takes under a tokenizer ``preset``.

    ``preset`` is a name of :data:`PRESETS`, ``"custom"`` or a :class:`Preset`. Every
    other argument overrides the preset: ``fps`` (frames sampled per second),
    ``resolution`` (``(H, W)`` or a square side the frames are tokenized at; refused by a
    preset whose count does not depend on it), ``downsample`` (pixels per token side; refused by
    a preset whose count does not depend on it, and by mmtok's, whose image tokenizer fixes it),
    ``tokens_per_frame_overhead`` (separators per frame), ``audio_tokens_per_second``.
    ``model`` is a size (``"tiny"``, ``"small"``, ``"base"``), priced with ``vocab_size`` ids
    (default: ``ModelConfig``'s; ``vocab_source`` says where the number comes from), or a
    :class:`~mmtok.lm.model_config.ModelConfig` (its own vocabulary); ``kv_dtype`` one of
    ``fp32 bf16 fp16 fp8 int8``. Frames are sampled at ``0, 1/fps, 2/fps, ... < duration``.
    ``chunk_seconds`` counts the video cut as a ``{"video": ..., "chunk_seconds": S}`` segment of
    ``mmtok tokenize`` is: chunks of ``S * fps`` frames (half up, at least one), each with the preset's
    per-video and per-soundtrack markers (mmtok's ``<bov> <eov>`` and ``<boa> <eoa>``; exact while a chunk
    lasts at least one audio token); not for a preset with temporal compression.
    Each number must be finite and within a sane range (:data:`MAX_DURATION_S`, ...), a :class:`Preset`'s own
    too (a ValueError names the preset and the field).

    >>> p = plan(8 / 24, preset="cosmos")  # 8 frames at 24 fps
    >>> p.frames, p.latent_frames, p.video_tokens
    (8, 2, 512)
    >>> plan(1, preset="chameleon").tokens_per_frame
    1024.0
    """
    duration_s = _number(duration_s, "duration_s (DURATION, in seconds)", 0, MAX_DURATION_S, above=True)
    p = _overridden(preset if isinstance(preset, Preset) else get_preset(preset), fps=fps, resolution=resolution,
                    downsample=downsample, overhead=tokens_per_frame_overhead, audio_rate=audio_tokens_per_second)
    p = _chunked(p, chunk_seconds)
    p = _at_working_size(p)
    if kv_dtype not in KV_BYTES:
        raise ValueError(f"kv_dtype must be one of {list(KV_BYTES)}, got {kv_dtype!r}")
    if vocab_size is not None:
        vocab_size = _number(vocab_size, "vocab_size", 1, 1 << 31, integer=True)
    grid, per_latent = latent_frame_tokens(p)
    frames, latent, video_tokens, audio_tokens = counts(p, per_latent, duration_s)
    total = video_tokens + audio_tokens
    chunks_per_s = chunk_rate(p)  # each chunk's own markers, in the long-run rates too
    v_rate = per_latent * p.fps / p.temporal + p.tokens_per_video * chunks_per_s
    a_rate = p.audio_tokens_per_second + (p.tokens_per_audio * chunks_per_s if p.audio_tokens_per_second else 0.0)
    rate = v_rate + a_rate
    windows = [WindowFit(name, size, total <= size, holds(p, per_latent, size), total / size)
               for name, size in WINDOWS.items()]
    priced_with = vocab_source if vocab_size is not None and not isinstance(model, ModelConfig) else ""
    return ContextPlan(
        preset=p.name, source=p.source, duration_s=duration_s, fps=p.fps, resolution=p.resolution, grid=grid,
        frames=frames, latent_frames=latent, tokens_per_frame=per_latent / p.temporal, video_tokens_per_second=v_rate,
        audio_tokens_per_second=a_rate, tokens_per_second=rate, tokens_per_minute=60.0 * rate,
        video_tokens=video_tokens, audio_tokens=audio_tokens, total_tokens=total, windows=windows,
        note=p.note, vocab_source=priced_with, chunk_seconds=p.chunk_seconds,
        **_costs(model, total, kv_dtype, vocab_size),
    )


def _overridden(p: Preset, *, fps: float | None, resolution: tuple[int, int] | int | None,
                downsample: int | None, overhead: int | None, audio_rate: float | None) -> Preset:
    """``p`` with the caller's numbers in place of its own, each checked."""
    fps = p.fps if fps is None else _number(fps, "fps (--fps)", *FPS_RANGE)
    if downsample is not None:
        _refuse_fixed(p, "downsample (--downsample)", p.fixed_downsample)
    ds = p.downsample if downsample is None else _number(downsample, "downsample (--downsample)", 1, MAX_SIDE,
                                                         integer=True)
    overhead = (p.tokens_per_frame_overhead if overhead is None else
                _number(overhead, "tokens_per_frame_overhead (--frame-overhead)", 0, MAX_OVERHEAD, integer=True))
    audio_rate = (p.audio_tokens_per_second if audio_rate is None else
                  _number(audio_rate, "audio_tokens_per_second (--audio-tokens-per-second)", 0, MAX_AUDIO_RATE))
    if resolution is not None:
        _refuse_fixed(p, "resolution (--resolution)", p.fixed_size)
    if isinstance(resolution, numbers.Real):
        resolution = (resolution, resolution)
    if resolution is not None:
        if len(resolution) != 2:
            raise ValueError(f"resolution (--resolution) must be (H, W) or one side, got {resolution!r}")
        resolution = tuple(_number(side, "resolution (--resolution, each side)", 1, MAX_SIDE, integer=True)
                           for side in resolution)
    res = p.resolution if resolution is None else resolution
    if p.fixed_tokens_per_frame is not None:
        res = None  # a count independent of resolution
    elif res is None:
        raise ValueError(f"preset {p.name!r} needs a resolution to count patches; pass resolution=(H, W) (--resolution WxH)")
    return _checked(replace(p, fps=fps, downsample=ds, resolution=res, tokens_per_frame_overhead=overhead,
                            audio_tokens_per_second=audio_rate))


def _chunked(p: Preset, chunk_seconds: float | None) -> Preset:
    """``p`` with the caller's ``chunk_seconds`` (checked), or its own; refused for temporal compression, whose
    chunks would each restart the latent frames."""
    if chunk_seconds is not None:
        p = replace(p, chunk_seconds=_number(chunk_seconds, "chunk_seconds (--chunk-seconds)", 0, MAX_DURATION_S,
                                             above=True))
    elif p.chunk_seconds is not None:
        p = replace(p, chunk_seconds=_number(p.chunk_seconds, f"preset {p.name!r}: chunk_seconds", 0,
                                             MAX_DURATION_S, above=True))
    if p.chunk_seconds is not None and p.temporal != 1:
        raise ValueError(f"chunk_seconds (--chunk-seconds) does not apply to preset {p.name!r}: its {p.temporal} "
                         "frames per latent frame would restart in every chunk; leave it out")
    return p


def _checked(p: Preset) -> Preset:
    """``p`` once each of its own numbers is in range (a :class:`Preset` built by hand is checked as the caller's
    numbers are), held as the int or float it stands for; else a ValueError naming the preset and the field."""
    def check(name: str, value: Any, lo: float, hi: float, integer: bool = True) -> Any:
        return _number(value, f"preset {p.name!r}: {name}", lo, hi, integer=integer)

    ints = {name: check(name, getattr(p, name), 0, MAX_OVERHEAD)
            for name in ("tokens_per_row", "tokens_per_frame_overhead", "tokens_per_video", "tokens_per_audio")}
    if p.fixed_tokens_per_frame is not None:
        ints["fixed_tokens_per_frame"] = check("fixed_tokens_per_frame", p.fixed_tokens_per_frame, 1, MAX_SIDE**2)
    res = p.resolution
    if res is not None:
        if isinstance(res, (str, bytes)) or not isinstance(res, Sequence) or len(res) != 2:
            raise ValueError(f"preset {p.name!r}: resolution must be (H, W) or None, got {res!r}")
        res = tuple(check("resolution (each side)", side, 1, MAX_SIDE) for side in res)
    if not isinstance(p.causal_first_frame, bool):
        raise ValueError(f"preset {p.name!r}: causal_first_frame must be True or False, got {p.causal_first_frame!r}")
    return replace(p, fps=check("fps", p.fps, *FPS_RANGE, integer=False), resolution=res,
                   audio_tokens_per_second=check("audio_tokens_per_second", p.audio_tokens_per_second, 0,
                                                 MAX_AUDIO_RATE, integer=False),
                   downsample=check("downsample", p.downsample, 1, MAX_SIDE),
                   temporal=check("temporal", p.temporal, 1, MAX_TEMPORAL), **ints)


def _refuse_fixed(p: Preset, what: str, fixed: str) -> None:
    """A ValueError naming ``what`` (the argument and its flag) when ``p`` does not let it change the count: a fixed
    count per frame, or ``fixed``, the preset's reason why that number is its own."""
    if p.fixed_tokens_per_frame is None and not fixed:
        return
    why = fixed or f"it counts {p.fixed_tokens_per_frame} tokens per frame whatever the frame's size"
    raise ValueError(f"{what} does not apply to preset {p.name!r}: {why}; leave it out")


def _at_working_size(p: Preset) -> Preset:
    """``p`` with its frames at the size its image tokenizer reads them at: under size policy ``"native"`` with a
    ``working_size``, a frame longer than the tokenizer's bound is counted at the size it reduces it to, and the
    note says so; any other preset as it is."""
    if p.size_policy != "native" or p.working_size is None or p.resolution is None:
        return p
    h, w = p.resolution
    nw, nh = p.working_size(w, h)
    if (nh, nw) == (h, w):
        return p
    side = max(nw, nh)  # the long side a frame is reduced to
    said = (f"frames of {w}x{h} are counted at {nw}x{nh}: size_policy 'native' reduces a frame longer than {side} "
            f"pixels to {side} on its long side")
    return replace(p, resolution=(nh, nw), note=f"{p.note}; {said}" if p.note else said)


def _costs(model: str | ModelConfig, total: int, kv_dtype: str, vocab_size: int | None) -> dict[str, Any]:
    """The :class:`ContextPlan` fields that price ``total`` tokens for a model size."""
    mname, mcfg = _model_config(model, vocab_size)
    n_params = count_params(mcfg)
    kv = 2 * mcfg.n_layer * mcfg.n_kv_head * mcfg.head_dim * KV_BYTES[kv_dtype] * total
    attn = 2.0 * mcfg.n_layer * total * total * mcfg.d_model  # QK^T and AV: 4 L T^2 C, halved by the causal mask
    # forward + backward, 3x the forward: 6 N a token, and 3x the causal attention (6 L T C a token: PaLM's 12, halved)
    train = 6.0 * n_params * total + 3.0 * attn
    return {"model": mname, "n_params": n_params, "vocab_size": mcfg.vocab_size, "kv_dtype": kv_dtype,
            "kv_cache_bytes": kv, "attention_flops": attn, "train_flops": train}
