"""Checkpoints: a folder with ``config.json`` and ``model.safetensors``.

Layout of ``config.json``::

    {"format": "mmtok-checkpoint", "format_version": 1, "kind": "vq",
     "mmtok_version": "0.1.0", "created": "...", "config": {...}, "provenance": {...}}

Writes are atomic (:mod:`mmtok.core.checkpoint_folder`): everything is written into a
hidden temporary folder next to the target, flushed to disk, and only then swapped in
with ``rename``. A process killed at any point leaves either the previous checkpoint
(possibly as the backup that loading and the next save find in its place) or the new
one, never a mixture; a load that runs while another process saves reads one save.
No pickle is used anywhere; tensors go through safetensors and everything else
through JSON.

>>> import torch, tempfile, os
>>> d = os.path.join(tempfile.mkdtemp(), "ckpt")
>>> _ = save_checkpoint(d, kind="demo", config={"n": 3}, tensors={"w": torch.zeros(2, 3)})
>>> ck = load_checkpoint(d, kind="demo")
>>> ck.config["n"], tuple(ck.tensors["w"].shape)
(3, (2, 3))
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import struct
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmtok.core.checkpoint_folder import read_settled, replace_folder, write_target
from mmtok.core.errors import CheckpointError
from mmtok.core.format_version import NewerCheckpointError, newer_message
from mmtok.core.paths import holds_cwd

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: configs need neither
    import torch

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "Checkpoint",
    "check_weights_kind",
    "config_from_dict",
    "config_to_dict",
    "load_checkpoint",
    "load_tensors",
    "read_config",
    "read_header",
    "read_metadata",
    "save_checkpoint",
    "save_tensors",
    "write_refusal",
]

FORMAT_NAME = "mmtok-checkpoint"
FORMAT_VERSION = 1  # bump when the layout changes; loading refuses newer versions
DAMAGED_CONFIG = ("its config.json is damaged or hand-edited; use another checkpoint (an older one of its run), "
                  "or save or train it again")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_CONFIG_INT = 1 << 24  # sanity cap on any integer in a model config (sizes, counts); seeds exempt
MAX_HEADER_BYTES = 100 << 20  # a safetensors header (JSON) longer than this is refused
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}

T = TypeVar("T")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    path: Path  # the folder it was read from
    kind: str  # what the weights are ("vq", "image", "audio", ...)
    config: dict[str, Any]  # the saved hyperparameters (a plain dict)
    tensors: dict[str, torch.Tensor]  # the weights, on the CPU
    meta: dict[str, Any] = field(default_factory=dict)  # the whole config.json


# --------------------------------------------------------------------------- dataclass <-> dict


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass (nested ones too) or a mapping as a JSON-ready dict."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a dataclass instance or a mapping, got {type(config).__name__}")


def _unwrap_dataclass_type(tp: Any) -> type | None:
    """The dataclass inside ``tp`` (``X`` or ``X | None``), or None."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(tp):
            found = _unwrap_dataclass_type(arg)
            if found is not None:
                return found
    return None


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data`` (nested dataclasses included).

    Unknown keys are refused (they mean the file was written by another version);
    missing keys take the dataclass defaults.
    """
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{where}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    upgrade = getattr(cls, "upgrade_dict", None)  # a config class that changed layout reads its older ones
    if callable(upgrade):
        try:
            data = upgrade(data)
        except ValueError as e:
            raise CheckpointError(f"{where}: {e}") from e
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown and len(unknown) > len(set(data) & names):  # mostly another class's fields, not a newer version's
        raise CheckpointError(
            f"{where}: the config does not fit {cls.__name__}: {len(unknown)} of its {len(data)} field(s) are not "
            f"its ({', '.join(unknown[:6])}{', ...' if len(unknown) > 6 else ''}); the config belongs to another kind of "
            "model than the checkpoint's \"kind\" says, or the file was edited"
        )
    if unknown:
        raise CheckpointError(
            f"{where}: unknown field(s) {unknown} for {cls.__name__}; "
            "the checkpoint was probably written by a different mmtok version"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        _check_config_int(name, value, where)
        sub = _unwrap_dataclass_type(hints.get(name))
        if sub is not None and isinstance(value, Mapping):
            value = config_from_dict(sub, value, where=f"{where}.{name}")
        else:
            value = _as_hinted(value, hints.get(name))
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid values for {cls.__name__}: {e}") from e


def _as_hinted(value: Any, hint: Any) -> Any:
    """A JSON list as the sequence type ``hint`` names: a tuple for ``tuple[...]``, also inside ``X | None`` or
    another union with one sequence type (``int | tuple[int, int] | None``), element by element; anything
    else as it is.

    >>> _as_hinted([64, 96], int | tuple[int, int] | None), _as_hinted([[1, 2]], tuple[tuple[int, int], ...])
    ((64, 96), ((1, 2),))
    """
    if not isinstance(value, list):
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        seqs = [a for a in args if a in (tuple, list) or typing.get_origin(a) in (tuple, list)]
        return _as_hinted(value, seqs[0]) if len(seqs) == 1 else value
    if hint is tuple or origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_as_hinted(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(_as_hinted(v, a) for v, a in zip(value, args, strict=True))
        return tuple(value)
    if origin is list and len(args) == 1:
        return [_as_hinted(v, args[0]) for v in value]
    return value


def _check_config_int(name: str, value: Any, where: str) -> None:
    """Integers in a config (alone or in a list) are sizes or counts: refuse negative or absurd ones."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or "seed" in name:
            continue
        if v < 0 or v > MAX_CONFIG_INT:
            raise CheckpointError(
                f"{where}: config field {name} = {v} is {'negative' if v < 0 else 'absurdly large'}; "
                f"sizes and counts must lie in [0, {MAX_CONFIG_INT:,}] (the file is damaged or hand-edited)"
            )


# --------------------------------------------------------------------------- writing


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file``, and then the file's mode as the umask gives any new file (0644 for
    the usual 022): safetensors creates it readable by its owner only, so another user or container could
    not load a model that the JSON beside it describes."""
    from safetensors.torch import save_file  # here, not on top: reading a config needs no torch
    save_file(dict(tensors), str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process's umask, read where Linux shows it (setting it to read it back would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies that safetensors accepts (no shared storage)."""
    import torch
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[name] = t
    return out


def _is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds an mmtok checkpoint (its config names our format), not just any config.json."""
    try:
        return json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8-sig")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def write_refusal(folder: str | os.PathLike[str], *, kind: str | None = None) -> str | None:
    """Why a checkpoint may not be written to ``folder`` (None when it may): it is a file, the current folder
    or holds it, or it holds files and no mmtok checkpoint (which replacing it would lose). With ``kind``, a
    checkpoint of another kind (or an unreadable one) is refused too, named by its kind and versions.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "notes.txt").write_text("mine")
    4
    >>> write_refusal(d / "new") is None, write_refusal(d)[:35]
    (True, 'holds files and no mmtok checkpoint')
    """
    folder = Path(folder)
    try:
        if not folder.exists():
            return None
        if not folder.is_dir():
            return "is a file, not a folder"
        if holds_cwd(folder):
            return "is the current folder or holds it"
        if not any(folder.iterdir()):
            return None
        if kind is None:
            return None if _is_checkpoint(folder) else (
                f"holds files and no mmtok checkpoint ({CONFIG_NAME} of format {FORMAT_NAME!r}), "
                "which replacing it would delete")
        if not (folder / CONFIG_NAME).is_file():
            return f"holds files and no checkpoint of kind {kind!r} ({CONFIG_NAME}), which replacing it would delete"
        meta = read_config(folder)
    except OSError as e:
        return f"cannot be looked into ({e.strerror or e})"
    except CheckpointError as e:
        what = "an mmtok checkpoint" if kind is None else f"a checkpoint of kind {kind!r}"
        return f"holds files that are not {what} ({e}), which replacing it would delete"
    if meta.get("kind") == kind:
        return None
    made = (meta.get("provenance") or {}).get("model_version")
    which = f"model version {made!r}, " if made else ""
    return (f"holds a checkpoint of kind {meta.get('kind')!r} ({which}checkpoint format version "
            f"{meta['format_version']}, written by mmtok {meta.get('mmtok_version', '?')}), not one of kind "
            f"{kind!r}, which replacing it would delete")


def save_checkpoint(
    folder: str | os.PathLike[str],
    *,
    kind: str,
    config: Any,
    tensors: Mapping[str, torch.Tensor],
    provenance: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    ``config`` is a dataclass or a dict of hyperparameters; ``tensors`` the
    weights; ``provenance`` says what data and command made them;
    ``extra_files`` (name -> content) are written beside, e.g. a model card.
    If ``folder`` already holds a checkpoint it is replaced only once the new one is
    completely on disk (:func:`~mmtok.core.checkpoint_folder.replace_folder`); the files the
    new one writes are new, and any other files or folders beside them (notes, samples, a
    model card the new save does not write) are kept. A symlink is followed: the folder it
    points to is replaced and the link stays. A folder that holds other files and no
    checkpoint is refused, and so is the current folder; a folder that cannot be written
    (no permission, no space) is a :class:`CheckpointError` naming it and the cause.
    """
    from mmtok._version import __version__

    folder = Path(folder)
    target = write_target(folder)
    refused = write_refusal(target)
    if refused:
        raise CheckpointError(f"cannot write checkpoint to {folder}: it {refused}; nothing was written "
                              "(give a new or empty folder)")
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "mmtok_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config_to_dict(config),
        "provenance": dict(provenance or {}),
    }
    meta.update(dict(extra_meta or {}))

    def fill(tmp: Path) -> None:
        save_tensors(_plain_tensors(tensors), tmp / WEIGHTS_NAME, metadata={"kind": kind})
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
        for name, content in (extra_files or {}).items():
            if "/" in name or name in (CONFIG_NAME, WEIGHTS_NAME):
                raise ValueError(f"extra file name {name!r} is not allowed")
            (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)

    try:
        replace_folder(target, fill, marker=CONFIG_NAME)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint to {folder}: {e.strerror or e} (in {target.parent}); "
                              "a checkpoint already there is kept") from e
    return folder


# --------------------------------------------------------------------------- reading


def read_config(
    folder: str | os.PathLike[str], *, kind: str | Iterable[str] | None = None
) -> dict[str, Any]:
    """Read and validate ``config.json`` of a checkpoint folder (no weights); ``meta["_path"]`` is the folder
    read: ``folder``, or the backup a writer killed mid-save left (:func:`~mmtok.core.checkpoint_folder.locate`)."""
    return read_settled(Path(folder), lambda path: _read_meta(path, kind), marker=CONFIG_NAME)


def _read_meta(folder: Path, kind: str | Iterable[str] | None) -> dict[str, Any]:
    """:func:`read_config` of the folder found: ``config.json`` read and checked."""
    path = folder / CONFIG_NAME
    try:
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} has no {CONFIG_NAME}")
        meta = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM, as some editors save it, is no error
    except OSError as e:
        raise CheckpointError(f"checkpoint {folder}: cannot read {CONFIG_NAME} ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_NAME} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_NAME} is not an mmtok checkpoint config")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"checkpoint {folder}: format_version is missing or not an integer: {DAMAGED_CONFIG}")
    if version > FORMAT_VERSION:
        raise NewerCheckpointError(f"checkpoint {folder} has format_version {version}, newer than this mmtok's: it "
                                   f"{newer_message('', version, FORMAT_VERSION).lstrip()}")
    if version < 1:
        raise CheckpointError(f"checkpoint {folder}: format_version {version} is older than any mmtok wrote (this one "
                              f"reads 1 to {FORMAT_VERSION}): {DAMAGED_CONFIG}")
    if not isinstance(meta.get("kind"), str):
        found = f"it has {json.dumps(meta['kind'])}" if "kind" in meta else "it has none"
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_NAME} names no kind of checkpoint (a \"kind\" string "
                              f"such as \"vq\"; {found}); the file is damaged or hand-edited")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if meta["kind"] not in kinds:
            raise CheckpointError(
                f"checkpoint {folder} is of kind {meta['kind']!r}, expected "
                + " or ".join(repr(k) for k in kinds)
            )
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_NAME} has no 'config' object")
    meta["_path"] = str(folder)
    return meta


def _header_json(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's header as read (its JSON object, ``__metadata__`` included) and the bytes of tensor
    data after it; a :class:`CheckpointError` naming ``path`` when the file cannot be read or is no such file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= n <= min(size - 8, MAX_HEADER_BYTES):
                raise CheckpointError(f"{path} is unreadable: not a safetensors file "
                                      f"(header length {n}, file {size} bytes)")
            header = json.loads(f.read(n))
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path} is unreadable: its safetensors header is damaged ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is unreadable: its safetensors header is not a JSON object")
    return header, size - 8 - n


def read_header(path: str | os.PathLike[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor's ``(dtype, shape)`` from a safetensors file's header, no tensor data read.

    The file starts with the header's length (8 bytes, little-endian) and then the
    header, JSON of ``{name: {"dtype", "shape", "data_offsets"}}``; every entry is
    checked against the file's size.
    """
    path = Path(path)
    header, data_bytes = _header_json(path)
    return {name: _header_entry(path, name, entry, data_bytes)
            for name, entry in header.items() if name != "__metadata__"}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file's header (a checkpoint's weights record their
    ``kind`` there); ``{}`` for a file without them or whose header cannot be read (:func:`read_header` says why)."""
    try:
        meta = _header_json(Path(path))[0].get("__metadata__")
    except CheckpointError:
        return {}
    return {k: v for k, v in meta.items() if isinstance(v, str)} if isinstance(meta, dict) else {}


def check_weights_kind(folder: Path, kind: str) -> None:
    """A :class:`CheckpointError` when checkpoint ``folder``'s weights were saved as another kind than its
    ``config.json`` says (``kind``): a config copied in from another checkpoint, which would otherwise be
    reported as a long list of missing and misshapen tensors. Weights that record no kind pass."""
    saved_as = read_metadata(folder / WEIGHTS_NAME).get("kind")
    if saved_as is not None and saved_as != kind:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_NAME} says kind {kind!r}, but {WEIGHTS_NAME} was saved "
                              f"as kind {saved_as!r}: the two files come from different checkpoints; put back the "
                              f"{CONFIG_NAME} saved with these weights")


def _sizes(xs: Any) -> bool:
    return isinstance(xs, list) and all(type(x) is int and x >= 0 for x in xs)


def _header_entry(path: Path, name: str, entry: Any, data_bytes: int) -> tuple[str, tuple[int, ...]]:
    bad = f"{path}: tensor {name!r} in the safetensors header"
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPE_BYTES:
        raise CheckpointError(f"{bad} has no known dtype ({str(entry)[:80]})")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not _sizes(shape) or not _sizes(offsets) or len(offsets) != 2:
        raise CheckpointError(f"{bad} has an invalid shape or data_offsets ({str(entry)[:80]})")
    begin, end = offsets
    if not begin <= end <= data_bytes or end - begin != math.prod(shape) * _DTYPE_BYTES[entry["dtype"]]:
        raise CheckpointError(f"{bad}: shape {shape} ({entry['dtype']}) does not fit data_offsets {offsets} "
                              f"in {data_bytes} bytes of data")
    return entry["dtype"], tuple(shape)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The weights of checkpoint folder ``path``, after :func:`read_header` checked them."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    weights = path / WEIGHTS_NAME
    try:
        if not weights.is_file():
            raise CheckpointError(f"checkpoint {path} has no {WEIGHTS_NAME}")
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read {WEIGHTS_NAME} ({e.strerror or e})") from e
    read_header(weights)
    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_NAME} is unreadable ({e})") from e


def load_checkpoint(
    folder: str | os.PathLike[str], *, kind: str | Iterable[str] | None = None
) -> Checkpoint:
    """Read a checkpoint folder, checking kind, format version and the weights' header; the config and the
    weights come from one save even while another process saves over the folder
    (:func:`~mmtok.core.checkpoint_folder.read_settled`)."""

    def read(path: Path) -> Checkpoint:
        meta = _read_meta(path, kind)
        del meta["_path"]
        check_weights_kind(path, meta["kind"])  # before the weights are read
        return Checkpoint(path=path, kind=meta["kind"], config=meta["config"], tensors=load_tensors(path),
                          meta=meta)

    return read_settled(Path(folder), read, marker=CONFIG_NAME)
