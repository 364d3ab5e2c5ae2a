"""``mmtok.load`` and ``mmtok.save``: shipped names or checkpoint folders <-> modules.

A module is saveable when it has a ``cfg`` dataclass and a ``KIND`` string; loading
reads ``config.json``, builds the module of that kind from its config and fills
in the weights, checking every shape.

>>> import tempfile, os, torch
>>> from mmtok.vq.quantizer import VectorQuantizer, VQConfig
>>> vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
>>> folder = save(vq, os.path.join(tempfile.mkdtemp(), "vq"))
>>> again = load(folder)
>>> bool(torch.equal(again.embed, vq.embed))
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from mmtok.core.checkpoint import (
    config_from_dict,
    load_checkpoint,
    load_state_dict_checked,
    read_config,
    save_checkpoint,
)
from mmtok.core.errors import CheckpointError
from mmtok.vq.quantizer import VectorQuantizer

__all__ = ["KINDS", "available", "load", "models_dir", "save"]

_PACKAGE_MODELS = Path(__file__).resolve().parent / "_models"  # inside an installed wheel
_REPO_MODELS = Path(__file__).resolve().parent.parent / "models"  # in a source checkout


def models_dir() -> Path:
    """The folder that holds the shipped checkpoints (``models/`` of the repo or the wheel's copy)."""
    for candidate in (_PACKAGE_MODELS, _REPO_MODELS):
        if candidate.is_dir():
            return candidate
    return _REPO_MODELS


def available() -> list[str]:
    """Names of the shipped checkpoints that ``load`` accepts (``"video"`` is built from ``"image"``)."""
    root = models_dir()
    if not root.is_dir():
        return []
    names = {p.name for p in root.iterdir() if (p / "config.json").is_file()}
    if "image" in names:
        names.add("video")
    return sorted(names)


def _shipped_video(device: Any) -> Any:
    """``load("video")``: the shipped image tokenizer on every frame at 1 frame per second."""
    from mmtok.video.tokenizer import VideoTokenizer

    module = VideoTokenizer(load("image"), fps=1.0).eval()
    module.provenance = {"built_from": "image", "fps": 1.0}  # type: ignore[assignment]
    return module.to(device) if device is not None else module


KINDS = ("vq", "image", "audio", "video", "text")  # the checkpoint kinds load() builds


def _kind_class(kind: str) -> type[nn.Module]:
    """The module class for a checkpoint kind (media modules imported only when needed)."""
    if kind == "vq":
        return VectorQuantizer
    if kind == "image":
        from mmtok.image.tokenizer import ImageTokenizer

        return ImageTokenizer
    if kind == "audio":
        from mmtok.audio.tokenizer import AudioTokenizer

        return AudioTokenizer
    if kind == "video":
        from mmtok.video.tokenizer import VideoTokenizer

        return VideoTokenizer
    raise CheckpointError(f"checkpoint kind {kind!r} is not one this mmtok can build (known: {KINDS})")


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    name = str(name_or_path)
    if "/" not in name and os.sep not in name:
        shipped = models_dir() / name
        if shipped.is_dir():
            return shipped
        raise CheckpointError(
            f"{name!r} is neither a folder nor a shipped checkpoint; shipped: {available() or 'none'}"
        )
    raise CheckpointError(f"no checkpoint at {path}: the folder does not exist")


def load(
    name_or_path: str | os.PathLike[str], *, kind: str | None = None, device: Any = None
) -> Any:
    """Load a shipped checkpoint by name (``"image"``, ``"audio"``, ``"video"``) or any checkpoint folder.

    ``"video"`` is :class:`mmtok.VideoTokenizer` over the shipped image tokenizer at
    1 frame per second (build your own for other rates or ``temporal="repeat"``).

    The module comes back in eval mode, on ``device`` (default CPU). A folder of
    kind ``"text"`` gives a :class:`mmtok.stream.text.BPETokenizer` (not a module).
    """
    if str(name_or_path) == "video" and not Path("video").exists() and not (models_dir() / "video").is_dir():
        if kind not in (None, "video"):
            raise CheckpointError(f"'video' is a checkpoint of kind 'video', not {kind!r}")
        return _shipped_video(device)
    folder = _resolve(name_or_path)
    meta = read_config(folder, kind=kind)
    if meta["kind"] == "text":  # a BPE vocabulary: no weights, not an nn.Module
        from mmtok.stream.text import BPETokenizer

        return BPETokenizer.load(folder)
    cls = _kind_class(meta["kind"])
    ck = load_checkpoint(folder, kind=meta["kind"])
    cfg_cls = cls.CONFIG_CLASS  # type: ignore[attr-defined]
    cfg = config_from_dict(cfg_cls, ck.config, where=f"{ck.path}/config.json")
    module = cls(cfg)
    load_state_dict_checked(module, ck.tensors, where=ck.path)
    module.provenance = ck.meta.get("provenance", {})  # type: ignore[assignment]
    module.eval()
    if device is not None:
        module.to(device)
    return module


def save(
    module: nn.Module,
    folder: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write ``module`` (anything with ``KIND`` and ``cfg``) as a checkpoint folder, atomically."""
    kind = getattr(module, "KIND", None)
    cfg = getattr(module, "cfg", None)
    if not isinstance(kind, str) or cfg is None:
        raise TypeError(
            f"save() needs a module with KIND and cfg attributes, got {type(module).__name__}"
        )
    return save_checkpoint(
        folder,
        kind=kind,
        config=cfg,
        tensors=module.state_dict(),
        provenance=provenance,
        extra_files=extra_files,
    )

