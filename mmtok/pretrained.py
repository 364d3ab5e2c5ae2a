"""``mmtok.load`` and ``mmtok.save``: shipped names or checkpoint folders <-> modules.

A module is saveable when it has a ``cfg`` dataclass and a ``KIND`` string; loading
reads ``config.json``, builds the module of that kind from its config and fills
in the weights, checking every shape.

>>> import tempfile, os, torch
>>> from mmtok.vq.config import VQConfig
>>> from mmtok.vq.quantizer import VectorQuantizer
>>> vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
>>> folder = save(vq, os.path.join(tempfile.mkdtemp(), "vq"))
>>> again = load(folder)
>>> bool(torch.equal(again.embed, vq.embed))
True
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from mmtok.core.checkpoint import CONFIG_NAME, config_from_dict, read_config
from mmtok.core.checkpoint_folder import locate
from mmtok.core.checkpoint_names import models_dir, resolve_checkpoint, shipped_names
from mmtok.core.errors import CheckpointError, UsageError
from mmtok.core.run_folder import (
    LM_CKPT_PREFIX,
    LM_KIND,
    TOKENIZER_MODEL_DIR,
    TOKENIZER_STATE_DIR,
    run_models,
)

if TYPE_CHECKING:  # for the types load() gives for the shipped names; imported when loading them
    from torch import nn

    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.image.tokenizer import ImageTokenizer
    from mmtok.video.tokenizer import VideoTokenizer

__all__ = ["KINDS", "available", "default_config", "is_callable_spec", "load", "load_config", "load_tokenizer",
           "model_version", "native_image_tokenizer", "rate_keywords", "run_model_of", "save", "tokenizer_config",
           "vocoder_keywords"]


def available() -> list[str]:
    """Names of the shipped checkpoints that ``load`` accepts (``"video"`` is built from ``"image"``)."""
    names = set(shipped_names())
    if "image" in names:
        names.add("video")
    return sorted(names)


def _shipped_image() -> Path:
    """The folder of the shipped image tokenizer, which ``"video"`` is built from: never an ``image/`` checkpoint of
    the working folder (which ``load("image")`` would take), so ``"video"`` is the same model wherever it is loaded."""
    folder = models_dir() / "image"
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError("'video' is the shipped image tokenizer at 1 frame per second, and this mmtok ships no "
                              f"image tokenizer (shipped: {shipped_names() or 'none'})")
    return folder


def _shipped_video(device: Any) -> Any:
    """``load("video")``: the shipped image tokenizer on every frame at 1 frame per second."""
    from mmtok.video.tokenizer import VideoTokenizer

    image = load(_shipped_image(), kind="image")
    module = VideoTokenizer(image, fps=1.0).eval()
    module.provenance = {"built_from": "image", "fps": 1.0}  # type: ignore[assignment]
    module.checkpoint_label = f"video: {image.checkpoint_label} at 1 fps"  # type: ignore[assignment]
    return module.to(device) if device is not None else module


KINDS = ("vq", "image", "audio", "vocoder", "video", "text")  # the checkpoint kinds load() builds
MODULE_KINDS = KINDS[:-1]  # the kinds built as a module from a config ("text" is a BPE vocabulary)
LM_CHECKPOINTS = f"{LM_CKPT_PREFIX}*"  # the checkpoint folders of a run of 'mmtok train'


def _kind_class(kind: str) -> type[nn.Module]:
    """The module class for a checkpoint kind (media modules imported only when needed)."""
    if kind == "vq":
        from mmtok.vq.quantizer import VectorQuantizer

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
    if kind == LM_KIND:
        raise CheckpointError(f"checkpoint kind {LM_KIND!r} is a training run's model from 'mmtok train': "
                              "mmtok.load_run(RUN) reads it")
    raise CheckpointError(f"checkpoint kind {kind!r} is not one this mmtok can build (known: {', '.join(MODULE_KINDS)})")


# where each kind's config class lives: a config is read without importing the module it builds
_CONFIG_HOMES = {
    "vq": ("mmtok.vq.config", "VQConfig"),
    "image": ("mmtok.image.config", "ImageTokenizerConfig"),
    "audio": ("mmtok.audio.config", "AudioTokenizerConfig"),
    "vocoder": ("mmtok.audio.vocoder_config", "VocoderConfig"),
    "video": ("mmtok.video.tokenizer", "VideoTokenizerConfig"),
}


def _config_class(kind: str) -> type:
    """The config class of a checkpoint kind (``kind``'s module class's ``CONFIG_CLASS``), from
    :data:`_CONFIG_HOMES`: reading a config imports the config's module, not the module class's.

    >>> _config_class("vq").__name__
    'VQConfig'
    """
    if kind not in _CONFIG_HOMES:
        _kind_class(kind)  # says why there is no config class for it
    module, name = _CONFIG_HOMES[kind]
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def default_config(kind: str) -> Any:
    """The default config object of a checkpoint kind: what an untrained module of that kind is built from.

    >>> default_config("vq").codebook_size
    1024
    """
    return _config_class(kind)()


def _check_request(name_or_path: Any, kind: Any) -> None:
    """A ``TypeError`` for a ``name_or_path`` that is neither a str nor an ``os.PathLike``, and a
    :class:`CheckpointError` for a ``kind`` that is no checkpoint kind (a typo would otherwise read as a
    checkpoint of the wrong kind), before anything is read."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a shipped name ({', '.join(available()) or 'none shipped'}) or a "
                        f"checkpoint folder, as a str or os.PathLike; got {type(name_or_path).__name__} "
                        f"{name_or_path!r:.60}")
    if kind is not None and kind not in (*KINDS, LM_KIND):
        raise CheckpointError(f"kind {kind!r} is not a kind of checkpoint: give one of {', '.join(KINDS)}, or None "
                              "to take whatever the checkpoint holds")


def _is_shipped_video(name_or_path: str | os.PathLike[str]) -> bool:
    """The str ``"video"`` names the shipped image tokenizer at 1 fps, unless a checkpoint folder of that name
    exists (a :class:`~pathlib.Path` is always a path)."""
    local = Path("video")
    return (isinstance(name_or_path, str) and name_or_path == "video"
            and not (local.exists() and (local / "config.json").is_file()) and not (models_dir() / "video").is_dir())


def _run_instead(folder: Path) -> str | None:
    """Why ``folder``, a folder with no ``config.json`` of its own, is no checkpoint and what loads what it holds:
    a run of ``mmtok train`` (``ckpt-*/``) goes to ``mmtok.load_run``, a tokenizer's training run to its exported
    ``model/``. None for any other folder."""
    if not folder.is_dir() or (folder / CONFIG_NAME).is_file():
        return None
    if any((ckpt / CONFIG_NAME).is_file() for ckpt in folder.glob(LM_CHECKPOINTS)):
        return (f"{folder} is a training run of 'mmtok train' ({LM_CHECKPOINTS}/), not a checkpoint: use "
                f"mmtok.load_run({str(folder)!r})")
    model, state = folder / TOKENIZER_MODEL_DIR, folder / TOKENIZER_STATE_DIR
    if (found := locate(model, CONFIG_NAME)) is not None and (found / CONFIG_NAME).is_file():
        return f"{folder} is a tokenizer training run, not a checkpoint: load {model}"
    if (state / CONFIG_NAME).is_file():
        return (f"{folder} is a tokenizer training run that has not exported its model ({model}) yet: run "
                "'mmtok train-tokenizer' on it again with --resume to finish it, then load that")
    return None


def _read_checkpoint(name_or_path: str | os.PathLike[str], kind: str | None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder ``name_or_path`` names and its ``config.json``; a :class:`CheckpointError` that says what
    loads it for a training run's folder (:func:`_run_instead`) or one of its checkpoints (kind ``"transformer"``)."""
    folder = resolve_checkpoint(name_or_path)
    instead = _run_instead(folder)
    if instead is not None:
        raise CheckpointError(instead)
    meta = read_config(folder, kind=kind)
    if meta["kind"] == LM_KIND:
        raise CheckpointError(f"{folder} is a checkpoint of a training run of 'mmtok train' (kind {LM_KIND!r}), not "
                              f"a tokenizer: use mmtok.load_run({str(folder)!r})")
    return folder, meta


def load_config(name_or_path: str | os.PathLike[str], *, kind: str | None = None) -> Any:
    """The config object of a shipped checkpoint or a checkpoint folder, without reading its weights.

    An :class:`~mmtok.image.config.ImageTokenizerConfig` for ``"image"``, an
    :class:`~mmtok.audio.tokenizer.AudioTokenizerConfig` for ``"audio"``, ...: what
    ``load(name_or_path).cfg`` would be. Text tokenizers (kind ``"text"``) have none.

    >>> import tempfile, os
    >>> from mmtok.vq.config import VQConfig
    >>> from mmtok.vq.quantizer import VectorQuantizer
    >>> folder = save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), os.path.join(tempfile.mkdtemp(), "vq"))
    >>> load_config(folder).codebook_size
    8
    """
    _check_request(name_or_path, kind)
    if _is_shipped_video(name_or_path):
        if kind not in (None, "video"):
            raise CheckpointError(f"'video' is a checkpoint of kind 'video', not {kind!r}")
        from mmtok.video.tokenizer import VideoTokenizerConfig

        return VideoTokenizerConfig(fps=1.0, image=load_config(_shipped_image(), kind="image"))
    folder, meta = _read_checkpoint(name_or_path, kind)
    if meta["kind"] == "text":
        raise CheckpointError(f"{folder} is a text tokenizer (a BPE vocabulary): it has no config object; "
                              "load it with mmtok.load")
    return config_from_dict(_config_class(meta["kind"]), meta["config"], where=f"{folder}/config.json")


@overload
def load(name_or_path: Literal["image"], *, kind: Literal["image"] | None = None,
         device: Any = None) -> ImageTokenizer: ...


@overload
def load(name_or_path: Literal["audio"], *, kind: Literal["audio"] | None = None,
         device: Any = None) -> AudioTokenizer: ...


@overload
def load(name_or_path: Literal["video"], *, kind: Literal["video"] | None = None,
         device: Any = None) -> VideoTokenizer: ...


@overload
def load(name_or_path: str | os.PathLike[str], *, kind: str | None = None, device: Any = None) -> Any: ...


def load(
    name_or_path: str | os.PathLike[str], *, kind: str | None = None, device: Any = None
) -> Any:
    """Load a shipped checkpoint by name (``"image"``, ``"audio"``, ``"video"``) or any checkpoint folder.

    Only a str without a folder separator is taken as a shipped name; a :class:`pathlib.Path` is always
    a folder (:func:`~mmtok.core.checkpoint_names.resolve_checkpoint`). ``"video"`` is :class:`mmtok.VideoTokenizer` over the shipped image tokenizer at
    1 frame per second (build your own for other rates or ``temporal="repeat"``), even where the working folder
    holds an ``image/`` checkpoint of its own. ``kind`` (one of :data:`KINDS`) refuses a checkpoint of another kind.

    The module comes back in eval mode, on ``device`` (default CPU). A folder of
    kind ``"text"`` gives a :class:`mmtok.stream.text.BPETokenizer` (not a module); one of
    kind ``"vocoder"`` (a vocoder training run's ``best/``) a :class:`mmtok.audio.vocoder.Vocoder`.
    A ``device`` that is not there (``"cuda"`` without a GPU, a name torch does not know) is a
    :class:`~mmtok.core.errors.DeviceError` before anything is read. For type checkers, the shipped names
    ``"image"``, ``"audio"`` and ``"video"`` give an ImageTokenizer, AudioTokenizer and VideoTokenizer.
    """
    _check_request(name_or_path, kind)
    device = _checked_device(device)
    if _is_shipped_video(name_or_path):
        if kind not in (None, "video"):
            raise CheckpointError(f"'video' is a checkpoint of kind 'video', not {kind!r}")
        return _shipped_video(device)
    folder, meta = _read_checkpoint(name_or_path, kind)
    if meta["kind"] == "text":  # a BPE vocabulary: no weights, not an nn.Module
        from mmtok.stream.text import BPETokenizer

        return BPETokenizer.load(folder)
    from mmtok.core.module_io import load_module  # with torch: imported when a model is built

    return load_module(_kind_class(meta["kind"]), folder, device=device)


def is_callable_spec(spec: str) -> bool:
    """Whether a MODEL argument names ``package.module:callable``: dotted Python names, a ``:`` and a name, and no
    path that exists. Anything else with a ``:`` is a path (``runs/2026-12-04T10:30/model``), refused as one when
    nothing is there.

    >>> is_callable_spec("vt:make"), is_callable_spec("image"), is_callable_spec("runs/10:30/model")
    (True, False, False)
    """
    module, colon, attr = spec.partition(":")
    return (bool(colon) and attr.isidentifier() and all(part.isidentifier() for part in module.split("."))
            and not os.path.exists(spec))


def _built(spec: str, error: type[Exception]) -> Any:
    """What the callable ``package.module:callable`` returns, its module imported with the working folder first on
    ``sys.path`` (as ``python -m`` would find it); ``sys.path`` is as it was afterwards. Whatever fails while the
    module is imported or the callable called (a missing module, a syntax error, a wrong signature, the callable's
    own exception) raises ``error``, one line naming ``spec``, the message and the exception's type, with the
    exception as its ``__cause__``; an interrupt or ``SystemExit`` goes through."""
    module, _, attr = spec.partition(":")
    here = os.getcwd()
    sys.path.insert(0, here)
    try:
        return getattr(importlib.import_module(module), attr)()
    except Exception as e:  # the spec's own code: anything it raises is a tokenizer that cannot be built
        said = " ".join(str(e).split())
        raise error(f"cannot build tokenizer {spec!r}: "
                    + (f"{said} ({type(e).__name__})" if said else type(e).__name__)) from e
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(here)


def load_tokenizer(spec: str, *, kind: str | None = None, error: type[Exception] = CheckpointError) -> Any:
    """The media tokenizer a MODEL argument (``--image``, ``--audio``, ``--video`` of every command) names: a
    shipped name, a checkpoint folder (both as :func:`load`), a tokenizer trainer's run folder (its exported
    ``RUN/model``, said on stderr), or ``package.module:callable`` (imported from the
    working folder or the installed packages, and called with no arguments).

    With ``kind``, a checkpoint of another kind is refused (:func:`load`), and so is a built tokenizer whose
    ``KIND`` says another kind (one without a ``KIND`` is taken as it is). What cannot be built, or is no media
    tokenizer (``codebook_size``, ``encode`` and ``decode``: :class:`~mmtok.core.protocol.MediaTokenizer`),
    raises ``error``, one of :mod:`mmtok.core.errors`.

    >>> load_tokenizer("mmtok.pretrained:native_image_tokenizer", kind="image").cfg.size_policy
    'native'
    >>> load_tokenizer("mmtok.pretrained:native_image_tokenizer", kind="audio")
    Traceback (most recent call last):
    mmtok.core.errors.CheckpointError: tokenizer 'mmtok.pretrained:native_image_tokenizer' gives an ImageTokenizer of kind 'image', not 'audio'
    """
    if not is_callable_spec(spec):
        return load(run_model_of(spec, kind), kind=kind)
    tok = _built(spec, error)
    missing = [name for name in ("codebook_size", "encode", "decode") if not hasattr(tok, name)]
    if missing:
        raise error(f"tokenizer {spec!r} gives {_a(type(tok).__name__)}, which has no {', '.join(missing)}: "
                    "a media tokenizer needs codebook_size, encode and decode (mmtok.core.protocol)")
    built_kind = getattr(tok, "KIND", None)
    if kind is not None and isinstance(built_kind, str) and built_kind != kind:
        raise error(f"tokenizer {spec!r} gives {_a(type(tok).__name__)} of kind {built_kind!r}, not {kind!r}")
    return tok


def _a(name: str) -> str:
    """``name`` with its indefinite article: "an ImageTokenizer", "a VideoTokenizer"."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


_RUNS_SAID: set[tuple[str | None, str]] = set()  # (kind, run folder) said on stderr once per process


def run_model_of(spec: str, kind: str | None) -> str:
    """``spec``, or for a tokenizer trainer's run folder (no checkpoint of its own, one exported model in
    ``RUN/model``) that model, said on stderr once, as the trainers' ``--init-from`` takes a run. Anything else
    comes back as it is, for :func:`load` to read or refuse (a vocoder run's two models among them)."""
    found = run_models(Path(spec), (TOKENIZER_MODEL_DIR, "best"))  # a vocoder run's two: not one to pick
    if len(found) != 1 or found[0].name != TOKENIZER_MODEL_DIR:
        return spec
    model = found[0]
    if (kind, spec) not in _RUNS_SAID:
        _RUNS_SAID.add((kind, spec))
        print(f"mmtok: --{kind or 'MODEL'} {spec} is a training run's folder: reading its model, {model}",
              file=sys.stderr)
    return str(model)


def tokenizer_config(spec: str, *, kind: str | None = None) -> Any:
    """:func:`load_config` of what a MODEL argument names when it is a checkpoint: a shipped name, a checkpoint
    folder, or a tokenizer trainer's run folder (:func:`run_model_of`)."""
    return load_config(run_model_of(spec, kind), kind=kind)


def rate_keywords(tok: Any, rate: int) -> dict[str, int]:
    """The keyword arguments with which the audio tokenizer ``tok`` encodes samples read at its own rate ``rate``:
    ``{"sample_rate": rate}`` where its ``encode`` takes one, none where it takes the samples alone."""
    from mmtok.core.protocol import takes_keyword

    return {"sample_rate": rate} if takes_keyword(tok.encode, "sample_rate") else {}


def vocoder_keywords(tok: Any, vocoder: str, name: str | None = None) -> dict[str, str]:
    """The keyword arguments by which the audio tokenizer ``tok`` (``--audio name``) decodes as ``--vocoder vocoder``
    asks: ``{"vocoder": vocoder}`` where its ``decode`` takes one; none where it does not and ``vocoder`` is
    ``"auto"`` (it decodes its own way); a :class:`UsageError` for another choice, which it cannot make.

    >>> class Tones:
    ...     def decode(self, codes): ...
    >>> vocoder_keywords(Tones(), "auto")
    {}
    """
    from mmtok.core.protocol import takes_keyword

    if takes_keyword(tok.decode, "vocoder"):
        return {"vocoder": vocoder}
    if vocoder == "auto":
        return {}
    raise UsageError(f"--vocoder {vocoder}: the audio tokenizer {name or type(tok).__name__} decodes its own way (its "
                     "decode takes no vocoder); leave --vocoder out")


def _checked_device(device: Any) -> Any:
    """``device`` as a torch device (None stays None), or a :class:`DeviceError` when it is not here."""
    from mmtok.core.device import pick_device

    return None if device is None else pick_device(device)


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
    from mmtok.core.module_io import carried_provenance, save_module

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
