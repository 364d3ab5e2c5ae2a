"""The written contract every media tokenizer keeps, and the fingerprint that names its vocabulary.

The Interleaver, the shard writer and the sampler talk to media tokenizers only
through :class:`MediaTokenizer` (and its two refinements, for tokenizers with a
spatial grid and for tokenizers with a token rate), never through a concrete
class, so a user's own tokenizer fits anywhere a shipped one does:

>>> import torch
>>> class Palette:  # 4 colours; a "picture" is a [h, w] grid of colour indices
...     codebook_size = 4
...     grid = (2, 2)
...     fingerprint = "palette-v1"
...     def encode(self, x):
...         return torch.as_tensor(x).long()
...     def decode(self, codes):
...         return codes.clone()
>>> isinstance(Palette(), GridTokenizer)
True
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

from mmtok.core.device import exact_float32

__all__ = ["GridTokenizer", "MediaTokenizer", "RateTokenizer", "module_fingerprint", "ordinary_outputs", "takes_keyword"]


@runtime_checkable
class MediaTokenizer(Protocol):
    """Media <-> integer codes in ``[0, codebook_size)``.

    ``encode(x)`` takes the medium (a path, a PIL image, a waveform, ...) and gives
    an int64 tensor of codes; ``decode(codes)`` gives the medium back as a tensor.
    Both are ordinary tensors (not inference tensors): they may be changed in place
    and fed to a model that trains (see :func:`ordinary_outputs`).
    ``fingerprint`` is a short string that changes whenever the same input would
    give different codes: a vocabulary records it, so data and models made with
    one tokenizer are never silently read with another.
    """

    @property
    def codebook_size(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(self, x: Any, /) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor, /) -> Any: ...


@runtime_checkable
class GridTokenizer(MediaTokenizer, Protocol):
    """A tokenizer whose codes form a spatial grid: images, and each frame of a video.

    ``grid`` is ``(rows, columns)`` of codes for an input at the default size.
    """

    @property
    def grid(self) -> tuple[int, int]: ...


@runtime_checkable
class RateTokenizer(MediaTokenizer, Protocol):
    """A tokenizer whose codes run in time at a fixed rate: audio.

    ``encode`` gives ``[n]`` codes, ``tokens_per_second`` of them per second of
    input at ``sample_rate``.
    """

    @property
    def sample_rate(self) -> int: ...

    @property
    def tokens_per_second(self) -> float: ...


def module_fingerprint(module: Any, *, cfg: Any = None, skip_prefix: str | None = None) -> str:
    """16 hex digits of sha256 over an ``nn.Module``'s class name, config and every tensor of its state.

    The default ``fingerprint`` of the media tokenizers; the same hash a vocabulary
    computes for an ``nn.Module`` tokenizer that has no fingerprint of its own (anything
    else must carry one: its class and sizes alone do not tell two codebooks apart). ``cfg``
    replaces the module's own config in the hash and state entries starting with ``skip_prefix``
    are left out: for parts that do not change the codes (a tokenizer's waveform decoder).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module_fingerprint hashes the state of a torch.nn.Module, got {type(module).__name__}")
    h = hashlib.sha256(type(module).__qualname__.encode())
    cfg = getattr(module, "cfg", None) if cfg is None else cfg
    if cfg is not None:
        h.update(repr(cfg).encode())
    for name, t in sorted(module.state_dict().items()):
        if skip_prefix is not None and name.startswith(skip_prefix):
            continue
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


Fn = TypeVar("Fn", bound=Callable[..., Any])


def _ordinary(x: Any) -> Any:
    """``x`` with every inference tensor in it (alone, or in a tuple or list) copied to an ordinary one."""
    if isinstance(x, torch.Tensor):
        return x.clone() if x.is_inference() else x
    if isinstance(x, (tuple, list)):
        return type(x)(_ordinary(v) for v in x)
    return x


def ordinary_outputs(fn: Fn) -> Fn:
    """Run a tokenizer's public ``encode``/``decode`` under ``torch.inference_mode`` (no autograd
    bookkeeping) and in exact float32 on CUDA (no TF32: :func:`~mmtok.core.device.exact_float32`, so a
    GPU gives the CPU's codes and sound), and hand back ordinary tensors: copies made outside that mode,
    which a caller may change in place or feed to a model that trains. Calls made from inside inference
    mode (one decorated method calling another) get the results as they are: the outermost call copies.

    >>> @ordinary_outputs
    ... def twice(x):
    ...     return x * 2
    >>> y = twice(torch.ones(2))
    >>> y.is_inference(), torch.nn.Embedding(4, 2)(y.long()).sum().requires_grad
    (False, True)
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if torch.is_inference_mode_enabled():
            with exact_float32():
                return fn(*args, **kwargs)
        with torch.inference_mode(), exact_float32():
            out = fn(*args, **kwargs)
        return _ordinary(out)

    return run  # type: ignore[return-value]


def takes_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes the keyword argument ``name`` (it names it, or takes ``**kwargs``); one whose signature
    cannot be read is taken to. A user's tokenizer (a MODEL argument's, an Interleaver's) need only keep the
    :class:`MediaTokenizer` contract, whose ``encode`` and ``decode`` take the medium alone:
    mmtok passes a keyword such as ``sample_rate`` only to those that take it.

    >>> takes_keyword(lambda codes, *, vocoder="auto": codes, "vocoder"), takes_keyword(lambda codes: codes, "vocoder")
    (True, False)
    """
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
               for p in params)
