"""Modules in checkpoints: an ``nn.Module`` with a dataclass config, saved to and built from
the folder format of :mod:`mmtok.core.checkpoint`, by path or by shipped name (``"image"``, found by
:mod:`~mmtok.core.checkpoint_names`).

Building checks before it allocates: the config's integers are capped, its counts of repeated
layers are compared with the number of tensors in the file, and the module is built on the meta
device so that its shapes can be compared with the weights' header. The module that takes the
weights is built without random initialisation when they overwrite every parameter of it
(:func:`weights_from_checkpoint`). Every refusal is a :class:`~mmtok.core.errors.CheckpointError`
that names the folder and, where it can, the config field to blame.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch

from mmtok.core.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_weights_kind,
    config_from_dict,
    load_tensors,
    read_config,
    read_header,
    save_checkpoint,
)
from mmtok.core.checkpoint_folder import read_settled
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.core.floats import all_finite
from mmtok.core.protocol import module_fingerprint

__all__ = [
    "TrainingFiles",
    "carried_provenance",
    "checkpoint_label",
    "load_module",
    "load_state_dict_checked",
    "save_module",
    "training_files",
    "weights_from_checkpoint",
]

T = TypeVar("T")
FIT_SHOWN = 4  # tensors named per kind of mismatch in a checkpoint-does-not-fit error


def _fit_problems(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> list[str]:
    """How the shapes a checkpoint holds (``found``) differ from a model's (``expected``)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: checkpoint {found[k]} vs model {expected[k]}"
             for k in expected if k in found and found[k] != expected[k]]
    def few(items: list[str], sep: str = ", ") -> str:  # a line a person reads, not every tensor of a model
        shown = sep.join(items[:FIT_SHOWN])
        return shown + (f"{sep}... ({len(items) - FIT_SHOWN} more)" if len(items) > FIT_SHOWN else "")

    problems = []
    if missing:
        problems.append(f"missing tensors [{few([repr(k) for k in missing])}]")
    if unexpected:
        problems.append(f"unexpected tensors [{few([repr(k) for k in unexpected])}]")
    if wrong:
        problems.append("shape mismatch " + few(wrong, "; "))
    return problems


def load_state_dict_checked(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], *, where: str | os.PathLike[str]
) -> None:
    """``module.load_state_dict`` with errors that name the checkpoint and each mismatch."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    problems = _fit_problems(expected, {k: tuple(v.shape) for k, v in tensors.items()})
    if problems:
        raise CheckpointError(f"checkpoint {where} does not fit the model: " + ", ".join(problems))
    module.load_state_dict(dict(tensors), strict=True)


def save_module(
    module: torch.nn.Module,
    folder: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write ``module`` (anything with a ``KIND`` string and a ``cfg`` dataclass) as a checkpoint folder."""
    kind = getattr(module, "KIND", None)
    cfg = getattr(module, "cfg", None)
    if not isinstance(kind, str) or cfg is None:
        raise TypeError(f"save() needs a module with KIND and cfg attributes, got {type(module).__name__}")
    return save_checkpoint(folder, kind=kind, config=cfg, tensors=module.state_dict(),
                           provenance=provenance, extra_files=extra_files)


def _config_ints(config: Any, prefix: str = "") -> dict[str, int]:
    """Every integer in a (nested) config dict, by dotted name."""
    out: dict[str, int] = {}
    for k, v in (config.items() if isinstance(config, Mapping) else ()):
        if isinstance(v, Mapping):
            out.update(_config_ints(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out.update({f"{prefix}{k}[{i}]": x for i, x in enumerate(v) if type(x) is int})
        elif type(v) is int:
            out[f"{prefix}{k}"] = v
    return out


def _shape_mismatch(where: Any, config: Any, file: Mapping[str, tuple[int, ...]],
                    model: Mapping[str, tuple[int, ...]]) -> str | None:
    """A one-line account of how the module the config builds differs from the file, or None.

    Config integers equal to a model-side size that differs from the file are named as suspects.
    """
    problems = _fit_problems(model, file)
    if not problems:
        return None
    dims = {d for k in model if k in file and len(model[k]) == len(file[k])
            for d, f in zip(model[k], file[k], strict=True) if d != f}
    suspects = [f"{name} = {v}" for name, v in _config_ints(config).items() if v in dims]
    blame = f" (config field {', '.join(suspects[:4])}?)" if suspects else ""
    return f"checkpoint {where} does not fit the model{blame}: " + ", ".join(problems)


_REPEAT_FIELD = re.compile(r"(^|_)(blocks|layers|n_layer)$")  # config counts of repeated layers


def _repeat_problem(config: Mapping[str, Any], tensors: int, prefix: str = "") -> str | None:
    """Why ``config`` asks for more repeated layers than a weights file of ``tensors`` tensors
    can hold (None when it does not). Every repeated layer or list-given stage owns at least one
    tensor, so a count above ``tensors`` cannot match the weights; refusing it here keeps a damaged
    or hand-edited count (``"enc_blocks": 215873``) from building a huge module before the shape
    check can say no."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found = _repeat_problem(value, tensors, prefix=f"{name}.")
            if found:
                return found
        elif isinstance(value, list) and len(value) > tensors:
            return (f"field {name!r} lists {len(value):,} entries, more than the {tensors:,} tensors "
                    "the weights hold (the file is damaged or hand-edited)")
        elif (isinstance(value, int) and not isinstance(value, bool) and _REPEAT_FIELD.search(str(key))
              and value > tensors):
            return (f"field {name!r} = {value:,} asks for more repeated layers than the {tensors:,} "
                    "tensors the weights hold (the file is damaged or hand-edited)")
    return None


# torch.nn.init's in-place initialisers, the ones the standard layers' reset_parameters and the modules' own
# init hooks call: inside weights_from_checkpoint they leave the tensor as it was allocated
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")
_skipping = threading.local()  # .depth: weights_from_checkpoint blocks open in this thread
_init_lock = threading.Lock()  # guards the two below
_init_users = 0  # weights_from_checkpoint blocks open in all threads: torch.nn.init is patched while any is
_init_originals: dict[str, Callable[..., Any]] = {}


def _skippable(init: Callable[..., Any]) -> Callable[..., Any]:
    """``init``, except that in a thread inside :func:`weights_from_checkpoint` it returns the tensor untouched."""
    @functools.wraps(init)
    def init_or_skip(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return tensor if getattr(_skipping, "depth", 0) else init(tensor, *args, **kwargs)
    return init_or_skip


@contextlib.contextmanager
def weights_from_checkpoint() -> Iterator[None]:
    """Modules built in this block skip random initialisation: ``torch.nn.init``'s in-place functions (which
    the standard layers' ``reset_parameters`` and the modules' own init hooks call) leave each tensor as
    allocated, so the block is only for a module whose every parameter and persistent buffer a checkpoint
    then overwrites (:func:`load_module`). Numbers a constructor computes otherwise (windows, mel filterbanks)
    are computed as always; one that draws random numbers of its own (a ``torch.randn`` codebook) asks
    :func:`checkpoint_sets_weights` and leaves them out, so that loading never draws from torch's global generator.

    Only this thread skips: another thread building a module meanwhile initialises it as usual, and blocks
    may nest or overlap across threads. ``torch.nn.init`` gets its own functions back, the same objects,
    when the last open block ends, on error too. Code that patches ``torch.nn.init`` itself while a block
    is open is not provided for.

    >>> zeros_ = torch.nn.init.zeros_
    >>> with weights_from_checkpoint():
    ...     torch.nn.init.zeros_(torch.ones(2)).tolist()  # left as it was
    [1.0, 1.0]
    >>> torch.nn.init.zeros_ is zeros_, torch.nn.init.zeros_(torch.ones(2)).tolist()
    (True, [0.0, 0.0])
    """
    global _init_users
    with _init_lock:
        if _init_users == 0:
            for name in _INIT_FUNCTIONS:
                _init_originals[name] = getattr(torch.nn.init, name)
                setattr(torch.nn.init, name, _skippable(_init_originals[name]))
        _init_users += 1
    depth = getattr(_skipping, "depth", 0)
    _skipping.depth = depth + 1
    try:
        yield
    finally:
        _skipping.depth = depth
        with _init_lock:
            _init_users -= 1
            if _init_users == 0:
                for name, init in _init_originals.items():
                    setattr(torch.nn.init, name, init)
                _init_originals.clear()


def checkpoint_sets_weights() -> bool:
    """Whether this thread is inside :func:`weights_from_checkpoint`: a constructor then only allocates the
    tensors it would fill with random numbers (every persistent one is overwritten by the checkpoint)."""
    return bool(getattr(_skipping, "depth", 0))


def building_on_meta() -> bool:
    """Whether modules are being built on the meta device now (:func:`load_module` checks a checkpoint's shapes
    so before reading its weights): a constructor then only allocates its buffers' shapes, skipping the numbers
    it would compute (random codes, filterbanks, windows), which on meta tensors cost torch's slow fallbacks."""
    return torch.empty(()).is_meta


def _meta_shapes(cls: Any, cfg: Any) -> dict[str, tuple[int, ...]] | None:
    """Shapes of the state dict ``cls(cfg)`` would have, built on the meta device (no memory).

    None when the constructor needs real numbers (e.g. a mel filterbank it computes);
    the size caps of :func:`config_from_dict` then guard the real build alone.
    """
    import torch.fx.experimental._config as fx_config

    try:
        with fx_config.patch(meta_nonzero_assume_all_nonzero=True), torch.device("meta"), weights_from_checkpoint():
            module = cls(cfg)  # only its shapes are read: no values to initialise
    except (RuntimeError, NotImplementedError):
        return None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _check_finite(tensors: Mapping[str, torch.Tensor], where: Any) -> None:
    for name, t in tensors.items():
        if not all_finite(t):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"checkpoint {where}: tensor {name!r} holds {bad} NaN/inf value(s); "
                                      "the weights are damaged (or training diverged)")


def carried_provenance(module: Any) -> dict[str, Any]:
    """The provenance a loaded module keeps when it is saved again without new provenance.

    Unchanged since loading (the same class, config and weights): its own provenance, so a
    save -> load round trip keeps ``model_version``. Changed (fine-tuned, pruned by hand):
    only where it came from, since the old provenance no longer describes these weights.
    A module that was never loaded from a checkpoint carries nothing.
    """
    prov = getattr(module, "provenance", None)
    loaded = getattr(module, "loaded_fingerprint", None)
    if not isinstance(prov, Mapping) or loaded is None:
        return {}
    if module_fingerprint(module) == loaded:
        return dict(prov)
    origin = prov.get("model_version") or getattr(module, "checkpoint_label", None) or "a loaded checkpoint"
    return {"derived_from": str(origin),
            "note": "weights or config changed after loading; save(..., provenance=...) describes them"}


class TrainingFiles(NamedTuple):
    """The files a checkpoint's provenance says it trained on (:func:`training_files`)."""

    root: Path | None  # the folder ``names`` are relative to (None: the provenance records no folder)
    names: list[str]  # as the trainer recorded them
    from_manifest: bool  # its --data was a corpus manifest.jsonl (``root`` is the manifest's folder)

    def on_disk(self) -> set[Path]:
        """The recorded files as they lie on this machine (resolved), if the folder is where it was."""
        return {(self.root / n).resolve() for n in self.names} if self.root is not None else set()


def training_files(module: Any) -> TrainingFiles:
    """What ``module``'s provenance (``provenance["data"]``: ``folder``, ``files``) records of its training data.

    >>> t = training_files(type("M", (), {"provenance": {"data": {"folder": "/c/manifest.jsonl", "files": ["a.png"]}}}))
    >>> t.root.as_posix(), t.names, t.from_manifest
    ('/c', ['a.png'], True)
    """
    data = (getattr(module, "provenance", None) or {}).get("data") or {}
    names = [str(n) for n in data.get("files", [])]
    if not data.get("folder"):
        return TrainingFiles(None, names, False)
    folder = Path(str(data["folder"]))
    manifest = folder.suffix == ".jsonl"
    return TrainingFiles(folder.parent if manifest else folder, names, manifest)


def checkpoint_label(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> str:
    """How a loaded checkpoint is named in messages: its folder, its ``model_version`` if the
    provenance gives one, and when and by which mmtok it was saved."""
    prov = meta.get("provenance") or {}
    version = prov.get("model_version") if isinstance(prov, Mapping) else None
    saved = f"saved {str(meta.get('created', '?'))[:10]} by mmtok {meta.get('mmtok_version', '?')}"
    return f"{Path(path).name} ({version}, {saved})" if version else f"{Path(path).name} ({saved})"


def _cannot_build(cls: Any, path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: cannot build {cls.__name__} from {CONFIG_NAME}: {type(e).__name__}: {e}")


def _read_fitting(cls: Any, path: Path) -> tuple[Path, dict[str, Any], Any, dict[str, torch.Tensor]]:
    """The folder, config.json, config object and weights of checkpoint folder ``path`` for ``cls``, each check of
    :func:`load_module` passed before the weights are read."""
    meta = read_config(path, kind=cls.KIND)
    meta.pop("_path")
    try:
        if not (path / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"checkpoint {path} has no {WEIGHTS_NAME}")
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read {WEIGHTS_NAME} ({e.strerror or e})") from e
    header = {k: shape for k, (_, shape) in read_header(path / WEIGHTS_NAME).items()}
    check_weights_kind(path, meta["kind"])
    cfg = config_from_dict(cls.CONFIG_CLASS, meta["config"], where=f"{path}/{CONFIG_NAME}")
    repeats = _repeat_problem(meta["config"], len(header))
    if repeats:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_NAME} {repeats}")
    try:
        shapes = _meta_shapes(cls, cfg)
    except Exception as e:  # a config the constructor cannot build from (zero sizes, ...)
        raise _cannot_build(cls, path, e) from e
    problem = None if shapes is None else _shape_mismatch(path, meta["config"], header, shapes)
    if problem:
        raise CheckpointError(problem)
    tensors = load_tensors(path)
    _check_finite(tensors, path)
    return path, meta, cfg, tensors


def _saved_dtype(tensors: Mapping[str, torch.Tensor], module: Any) -> torch.dtype:
    """The floating dtype a module was saved in: the one holding most of its floating weights (a tokenizer saved
    after ``.half()`` is float16, its codebook float32 as it keeps it). The module is cast to it before its
    weights are copied in, so a copy gives the saved module's codes, and a module built under a caller's other
    default dtype (float64) takes the checkpoint's, as every tensor made from its input does. None of the
    module's own float32 state is lost: a quantizer keeps its codebook float32 whatever it is cast to."""
    counts: dict[torch.dtype, int] = {}
    for t in tensors.values():
        if t.is_floating_point():
            counts[t.dtype] = counts.get(t.dtype, 0) + t.numel()
    if not counts:
        return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.get_default_dtype())
    return max(counts, key=lambda d: counts[d])


def load_module(cls: type[T], name_or_path: str | os.PathLike[str], *, device: Any = None) -> T:
    """Build ``cls`` (with ``KIND`` and ``CONFIG_CLASS``) from a checkpoint folder or shipped name.

    Nothing large is allocated before the config is known to fit the weights: the
    config's integers are checked (:data:`MAX_CONFIG_INT`), the module is built on
    the meta device and its shapes compared with the safetensors header; only then
    are the weights read (refused if any is NaN/inf) and the module built for real, without
    random initialisation when the weights set every parameter (:func:`weights_from_checkpoint`). The
    config and the weights come from one save, even while another process saves over the
    folder (:func:`~mmtok.core.checkpoint_folder.read_settled`). It comes back in eval mode with ``provenance`` set, and ``loaded_fingerprint``: a hash of
    its class, config and weights as read (:func:`carried_provenance` compares it at save).
    """
    folder = resolve_checkpoint(name_or_path)
    path, meta, cfg, tensors = read_settled(folder, lambda p: _read_fitting(cls, p), marker=CONFIG_NAME)
    try:
        with weights_from_checkpoint():
            module = cls(cfg)  # type: ignore[call-arg]
        if not all(name in tensors for name, _ in module.named_parameters()):  # type: ignore[attr-defined]
            # a parameter the weights do not set (a state-dict hook leaves it out) keeps its initial value
            module = cls(cfg)  # type: ignore[call-arg]
    except Exception as e:  # a config the constructor cannot build from (zero sizes, ...)
        raise _cannot_build(cls, path, e) from e
    module.to(_saved_dtype(tensors, module))  # type: ignore[attr-defined]
    load_state_dict_checked(module, tensors, where=path)  # type: ignore[arg-type]
    module.provenance = meta.get("provenance", {})  # type: ignore[attr-defined]
    module.loaded_fingerprint = module_fingerprint(module)  # type: ignore[attr-defined]
    module.checkpoint_label = checkpoint_label(path, meta)  # type: ignore[attr-defined]
    module.eval()  # type: ignore[attr-defined]
    if device is not None:
        module.to(device)  # type: ignore[attr-defined]
    return module
