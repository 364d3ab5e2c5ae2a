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

import torch
from torch import nn

from mmtok.core.checkpoint import config_from_dict, read_config
from mmtok.core.errors import CheckpointError, DeviceError
from mmtok.core.module_io import (
    carried_provenance,
    load_module,
    models_dir,
    resolve_checkpoint,
    save_module,
    shipped_names,
)
from mmtok.core.trainstate import pick_device
from mmtok.vq.quantizer import VectorQuantizer

__all__ = ["KINDS", "available", "default_config", "load", "load_config", "model_version", "native_image_tokenizer", "save"]


def available() -> list[str]:
    """Names of the shipped checkpoints that ``load`` accepts (``"video"`` is built from ``"image"``)."""
    names = set(shipped_names())
    if "image" in names:
        names.add("video")
    return sorted(names)


def _shipped_video(device: Any) -> Any:
    """``load("video")``: the shipped image tokenizer on every frame at 1 frame per second."""
    from mmtok.video.tokenizer import VideoTokenizer

    module = VideoTokenizer(load("image"), fps=1.0).eval()
    module.provenance = {"built_from": "image", "fps": 1.0}  # type: ignore[assignment]
    return module.to(device) if device is not None else module


KINDS = ("vq", "image", "audio", "vocoder", "video", "text")  # the checkpoint kinds load() builds
MODULE_KINDS = KINDS[:-1]  # the kinds built as a module from a config ("text" is a BPE vocabulary)


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
    if kind == "vocoder":
        from mmtok.audio.vocoder import Vocoder

        return Vocoder
    if kind == "video":
        from mmtok.video.tokenizer import VideoTokenizer

        return VideoTokenizer
    if kind == "text":
        raise CheckpointError("checkpoint kind 'text' is a BPE vocabulary, trained from a corpus: there is no "
                              "module or config object of it to build (mmtok.load reads a saved one)")
    raise CheckpointError(f"checkpoint kind {kind!r} is not one this mmtok can build (known: {', '.join(MODULE_KINDS)})")


def default_config(kind: str) -> Any:
    """The default config object of a checkpoint kind: what an untrained module of that kind is built from.

    >>> default_config("vq").codebook_size
    1024
    """
    return _kind_class(kind).CONFIG_CLASS()  # type: ignore[attr-defined]


def _is_shipped_video(name_or_path: str | os.PathLike[str]) -> bool:
    """The str ``"video"`` names the shipped image tokenizer at 1 fps, unless a checkpoint folder of that name
    exists (a :class:`~pathlib.Path` is always a path)."""
    local = Path("video")
    return (isinstance(name_or_path, str) and name_or_path == "video"
            and not (local.exists() and (local / "config.json").is_file()) and not (models_dir() / "video").is_dir())


def load_config(name_or_path: str | os.PathLike[str], *, kind: str | None = None) -> Any:
    """The config object of a shipped checkpoint or a checkpoint folder, without reading its weights.

    An :class:`~mmtok.image.tokenizer.ImageTokenizerConfig` for ``"image"``, an
    :class:`~mmtok.audio.tokenizer.AudioTokenizerConfig` for ``"audio"``, ...: what
    ``load(name_or_path).cfg`` would be. Text tokenizers (kind ``"text"``) have none.

    >>> import tempfile, os
    >>> from mmtok.vq.quantizer import VectorQuantizer, VQConfig
    >>> folder = save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), os.path.join(tempfile.mkdtemp(), "vq"))
    >>> load_config(folder).codebook_size
    8
    """
    if _is_shipped_video(name_or_path):
        if kind not in (None, "video"):
            raise CheckpointError(f"'video' is a checkpoint of kind 'video', not {kind!r}")
        from mmtok.video.tokenizer import VideoTokenizerConfig

        return VideoTokenizerConfig(fps=1.0, image=load_config("image", kind="image"))
    folder = resolve_checkpoint(name_or_path)
    meta = read_config(folder, kind=kind)
    if meta["kind"] == "text":
        raise CheckpointError(f"{folder} is a text tokenizer (a BPE vocabulary): it has no config object; "
                              "load it with mmtok.load")
    cfg_cls = _kind_class(meta["kind"]).CONFIG_CLASS  # type: ignore[attr-defined]
    return config_from_dict(cfg_cls, meta["config"], where=f"{folder}/config.json")


def load(
    name_or_path: str | os.PathLike[str], *, kind: str | None = None, device: Any = None
) -> Any:
    """Load a shipped checkpoint by name (``"image"``, ``"audio"``, ``"video"``) or any checkpoint folder.

    Only a str without a folder separator is taken as a shipped name; a :class:`pathlib.Path` is always
    a folder (:func:`~mmtok.core.module_io.resolve_checkpoint`). ``"video"`` is :class:`mmtok.VideoTokenizer` over the shipped image tokenizer at
    1 frame per second (build your own for other rates or ``temporal="repeat"``).

    The module comes back in eval mode, on ``device`` (default CPU). A folder of
    kind ``"text"`` gives a :class:`mmtok.stream.text.BPETokenizer` (not a module); one of
    kind ``"vocoder"`` (a vocoder training run's ``best/``) a :class:`mmtok.audio.vocoder.Vocoder`.
    A ``device`` that is not there (``"cuda"`` without a GPU, a name torch does not know) is a
    :class:`~mmtok.core.errors.DeviceError` before anything is read.
    """
    device = _checked_device(device)
    if _is_shipped_video(name_or_path):
        if kind not in (None, "video"):
            raise CheckpointError(f"'video' is a checkpoint of kind 'video', not {kind!r}")
        return _shipped_video(device)
    folder = resolve_checkpoint(name_or_path)
    meta = read_config(folder, kind=kind)
    if meta["kind"] == "text":  # a BPE vocabulary: no weights, not an nn.Module
        from mmtok.stream.text import BPETokenizer

        return BPETokenizer.load(folder)
    return load_module(_kind_class(meta["kind"]), folder, device=device)


def _checked_device(device: Any) -> Any:
    """``device`` as a torch device (None stays None), or a :class:`DeviceError` when it is not here."""
    if device is None:
        return None
    try:
        dev = pick_device(device)
    except DeviceError:
        raise
    except (RuntimeError, TypeError) as e:  # torch.device("bogus")
        raise DeviceError(f"device {device!r} is not a device torch knows (cpu, cuda, cuda:1, ...): {e}") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} asked for, but torch finds {torch.cuda.device_count()} CUDA GPU(s) here")
    return dev


def save(
    module: nn.Module,
    folder: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write ``module`` (anything with ``KIND`` and ``cfg``) as a checkpoint folder, atomically.

    Without ``provenance``, a module loaded by :func:`load` keeps its own (``model_version``
    included) if its config and weights are as loaded, and otherwise records only what it was
    derived from (:func:`~mmtok.core.module_io.carried_provenance`).
    """
    if provenance is None:
        provenance = carried_provenance(module)
    return save_module(module, folder, provenance=provenance, extra_files=extra_files)


def model_version(tok: Any) -> str | None:
    """The model version a tokenizer's provenance gives (a video tokenizer: its image tokenizer's), or None."""
    for prov in (getattr(tok, "provenance", None), getattr(getattr(tok, "image", None), "provenance", None)):
        if isinstance(prov, dict) and prov.get("model_version"):
            return str(prov["model_version"])
    return None


def native_image_tokenizer(name: str = "image") -> Any:
    """The shipped image tokenizer with the ``native`` size policy (a 64×64 picture is 4×4 codes).

    For ``TokenizerSpec(image="mmtok.pretrained:native_image_tokenizer")``: the toy
    tasks and the demo tokenize small pictures whole instead of cropping them to 256.
    """
    tok = load(name, kind="image")
    tok.cfg.size_policy = "native"
    return tok
