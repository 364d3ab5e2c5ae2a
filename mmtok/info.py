"""What a path holds, in a few lines: a shard folder, a training run, or a checkpoint.

``mmtok info PATH`` prints :func:`describe`'s answer through :func:`format_info`
(or as JSON with ``--json``). Nothing is trained or changed: shards are read from
their manifests, a run from its newest checkpoint that loads and its log, a tokenizer's
run from its train state (read whole, as ``--resume`` reads it:
:mod:`mmtok.info_tokenizer_run`), and a checkpoint from its ``config.json``; a
checkpoint's module is loaded (a transformer is only built, on the meta device) to
count its parameters, and a media tokenizer to report its fingerprint. A checkpoint a
save killed between its two renames left only as its backup is read there, as
:func:`mmtok.load` reads it (``read_from`` names it, a run's ``recover`` how to put it back); an export is
described and checked against its files by :mod:`mmtok.info_export`, which also lists what a writer killed
part-way left (``leftovers``). Nothing is put back or locked: describing writes nothing.

>>> format_info({"what": "demo", "path": "x", "size": 3})
'demo: x\\n  size  3'
"""

from __future__ import annotations

import errno
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import torch

from mmtok.core.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    config_from_dict,
    read_config,
)
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.errors import CheckpointError, MissingFileError
from mmtok.core.run_lock import LOCK_NAME, run_holder
from mmtok.data.codes import CODES_SUFFIX, load_codes
from mmtok.data.digest import files_sha256
from mmtok.data.media_files import MEDIA_SUFFIXES, media_kind
from mmtok.data.shards import MANIFEST, VERIFIED, open_shards
from mmtok.info_export import describe_export, export_backup, leftovers, vocab_tokenizers
from mmtok.info_tokenizer_run import (
    describe_tokenizer_run,
    holds_tokenizer_run,
    newer_config,
    running,
)
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.runs import MODALITIES, checkpoint_folders, newest_loadable, read_log
from mmtok.pretrained import load, model_version
from mmtok.stream.vocab import Vocabulary

__all__ = ["describe", "format_info"]

MEDIA_KINDS = ("image", "audio", "video")
WRAP = 100  # long values (a provenance sentence) wrap under their column


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of ``path``: a shard folder (``mmtok tokenize --out``), a run folder (``mmtok train --out``, or
    ``mmtok train-tokenizer ... --out``), a checkpoint (a folder, or a shipped name such as ``"audio"``), a code
    file (``mmtok encode``) or an export (``mmtok export``: parquet, datasets or bin).

    Refuses anything else with a :class:`~mmtok.core.errors.CheckpointError` naming the path (an image, sound
    or video file: saying to encode it first).
    """
    p = Path(path)
    _refuse_a_link_loop(p)
    if (backup := export_backup(p)) is not None:  # an export a kill stopped between its two renames
        raise backup
    if p.suffix.lower() in (CODES_SUFFIX, ".parquet") and not (p.exists() or p.is_symlink()):  # a file, misspelt
        raise MissingFileError(f"{p}: no such file")
    if p.is_file() and p.name.endswith(CODES_SUFFIX):
        return _code_file(p)
    if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES:
        what = {"image": "an image", "audio": "a sound", "video": "a video"}[media_kind(p)]
        raise CheckpointError(f"{p} is {what} (a media file by its extension), not a code file or a checkpoint; "
                              f"encode it first (mmtok encode {p} --out DIR), then describe DIR/{p.name}{CODES_SUFFIX}")
    if p.is_dir() and ((p / MANIFEST).is_file() or any(p.glob("part-*-of-*"))):
        return _shards(p)
    if p.is_dir() and not (p / CONFIG_NAME).is_file() and checkpoint_folders(p):
        return _run(p)
    if not (p / CONFIG_NAME).is_file() and holds_tokenizer_run(p):  # a tokenizer's run (mmtok train-tokenizer)
        return describe_tokenizer_run(p, _checkpoint)
    if not (p / CONFIG_NAME).is_file() and str(path) == "video":  # shipped: the image tokenizer at 1 fps
        return _tokenizer_summary({"what": "tokenizer", "path": "video (the shipped image tokenizer at 1 frame per "
                                   "second)", "kind": "video"}, load("video"))
    if (export := describe_export(p)) is not None:
        return export
    folder = resolve_checkpoint(path)
    if folder.is_file():  # (a bare shipped name is the shipped checkpoint, whatever file of that name is here)
        raise CheckpointError(f"{p} is a file 'mmtok info' does not describe: it describes code files "
                              f"(*{CODES_SUFFIX}) and Parquet exports, and shard, run, export and checkpoint folders")  # a bare name is a shipped checkpoint unless a checkpoint folder has it
    if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
        if any(folder.glob("shard-*.json")):  # shards written, the manifest not yet: a run stopped part-way
            raise CheckpointError(f"{p} holds the shards of a 'mmtok tokenize' that has not finished (no {MANIFEST} "
                                  "yet): run the same command again to resume it, then describe it")
        if {e.name for e in folder.iterdir()} == {LOCK_NAME}:  # a training run before its first save
            holder = run_holder(folder)
            state = (f"held by {holder}: it has not saved yet; describe it after its first save" if holder else
                     "its process is gone: the run stopped before its first save, and the same command starts it "
                     "afresh")
            raise CheckpointError(f"{p} holds only a training run's lock ({LOCK_NAME}), {state}")
        raise CheckpointError(f"{p} is not a shard folder ({MANIFEST}), a run folder (ckpt-*/, or a tokenizer's "
                              f"train-state/ or model/) or a checkpoint "
                              f"({CONFIG_NAME}): nothing to describe{_what_is_inside(folder)}")
    if (hf := _transformers_model_type(folder)) is not None:
        raise CheckpointError(f"{p} is a transformers model folder (model_type {hf!r}), as mmtok export-hf writes "
                              "it, not an mmtok checkpoint: load it with transformers "
                              "(AutoModelForCausalLM.from_pretrained); mmtok's id space is in its "
                              "mmtok_vocab.json")
    return _checkpoint(folder)


def _refuse_a_link_loop(p: Path) -> None:
    """A :class:`CheckpointError` when ``p`` is a symbolic link that never reaches a file or folder (a loop)."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CheckpointError(f"{p} is a symbolic link that leads back to itself ({p} -> {os.readlink(p)} -> ...)"
                                  ": nothing is there to describe; point it at a file or folder (ln -sfn TARGET "
                                  f"{p}), or name the file or folder itself") from None


DESCRIBED = (MANIFEST, CONFIG_NAME, "meta.json", "dataset_info.json", "train-state", "model")  # what marks a folder


def _what_is_inside(folder: Path) -> str:
    """What in ``folder`` ``mmtok info`` describes (code files, Parquet files, folders it knows) and the hidden
    names a killed writer left there, as the tail of a refusal; "" when there is none of them."""
    try:
        entries = sorted(e for e in folder.iterdir())
    except OSError:
        return ""
    known = [e.name + ("/" if e.is_dir() else "") for e in entries if not e.name.startswith(".") and (
        (e.is_file() and (e.name.endswith(CODES_SUFFIX) or e.suffix.lower() == ".parquet"))
        or (e.is_dir() and (any((e / name).exists() for name in DESCRIBED) or checkpoint_folders(e))))]
    tail = ""
    if known:
        shown = ", ".join(known[:5]) + (f" and {len(known) - 5:,} more" if len(known) > 5 else "")
        tail = (f"; it holds what 'mmtok info' describes, one path at a time: {shown} "
                f"(e.g. mmtok info {folder / known[0].rstrip('/')})")
    if left := leftovers(folder):
        tail += f"; it holds what a writer stopped part-way left: {'; '.join(left)}"
    return tail


def _transformers_model_type(folder: Path) -> str | None:
    """The ``model_type`` of a transformers folder's ``config.json`` (not mmtok's format); None otherwise."""
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or "format" in meta or not isinstance(meta.get("model_type"), str):
        return None
    return meta["model_type"]


def _code_file(path: Path) -> dict[str, Any]:
    """A code file from ``mmtok encode``: its codes, what made them, and whether the shipped models of its
    kind still read them (same vocabulary fingerprints, and every code within its codebook)."""
    codes, meta, audio_codes = load_codes(path)
    out: dict[str, Any] = {"what": "code file", "path": str(path), "kind": meta["kind"], "source": meta.get("source"),
                           "shape": list(codes.shape), "tokens": int(codes.size)}
    out |= {k: meta[k] for k in ("seconds", "fps", "model", "model_version", "fingerprint", "codebook_size")
            if k in meta}
    why = [_why_unread("codes", codes, meta, load(meta["kind"]), meta["kind"])]
    if audio_codes is not None:
        sound = meta.get("audio") or {}
        out["soundtrack"] = {"tokens": int(audio_codes.size), "seconds": sound.get("seconds"),
                             "model_version": sound.get("model_version"), "fingerprint": sound.get("fingerprint")}
        why.append(_why_unread("soundtrack codes", audio_codes, sound, load("audio"), "audio"))
    said = [w for w in why if w]
    out["shipped_model_reads_it"] = not said
    if said:
        out["why_not"] = "; ".join(said)
    return out


def _why_unread(what: str, arr: Any, meta: dict[str, Any], tok: Any, kind: str) -> str | None:
    """Why the shipped model ``tok`` of ``kind`` cannot decode the codes ``arr`` a code file's ``meta`` describes
    (another model made them, or a code is outside its codebook) and what to do; None when it can."""
    made, now = meta.get("fingerprint"), tok.fingerprint
    if made != now:
        by = meta.get("model_version") or meta.get("model") or "a model it does not name"
        return (f"its {what} were made by {by} (fingerprint {made}), the shipped {kind} model is "
                f"{model_version(tok) or kind} (fingerprint {now}): decode them with --{kind} naming the model "
                "that made them, or encode the original again")
    if arr.size and not 0 <= int(arr.min()) <= int(arr.max()) < tok.codebook_size:
        bad = int(arr.max()) if int(arr.max()) >= tok.codebook_size else int(arr.min())
        return (f"its {what} hold {bad}, outside the codebook of {tok.codebook_size:,} codes (0 to "
                f"{tok.codebook_size - 1:,}): the file is damaged; encode the original again")
    return None


def _shards(folder: Path) -> dict[str, Any]:
    s = open_shards(folder, verify=False)
    tokens: dict[str, int] = {}
    for m in s.manifests:
        for k, v in m.get("tokens", {}).items():
            if k != "total":
                tokens[k] = tokens.get(k, 0) + int(v)
    first = s.manifests[0]
    on_disk = sum(int(t.nbytes) for t in s.tokens)
    return {
        "what": "shards", "path": str(folder),
        "documents": s.num_docs, "tokens": s.num_tokens,
        "tokens_by_modality": {k: v for k, v in tokens.items() if v},
        "skipped_documents": sum(len(m.get("skipped", [])) for m in s.manifests),
        "parts": len(s.manifests), "shards": len(s.tokens), "dtype": str(first.get("dtype")),
        "bytes": on_disk, "source": (first.get("source") or {}).get("file"),
        "vocab_size": s.vocab.size, "fingerprint": s.vocab.fingerprint,
        "tokenizers": vocab_tokenizers(s.vocab),
        **_shard_bytes(s), "leftovers": leftovers(folder),
    }


HASH_NOW = 256 << 20  # shard bytes info hashes itself when no check is remembered; above, it says so


def _shard_bytes(s: Any) -> dict[str, Any]:
    """Whether the bytes of shard set ``s`` are those their manifests' sha256 name: ``checked`` from the checks
    ``.verified.json`` remembers for each file as it is now (its size and mtime), or hashed here when no check
    is remembered and they are small (:data:`HASH_NOW`); ``damaged`` for a shard whose bytes differ."""
    entries = [e for m in s.manifests for e in m.get("shards", [])]  # in the order of s.tokens, part by part
    listed = [(f.path.parent, e) for f, e in zip(s.tokens, entries, strict=True)]
    unvouched = []
    for sub, entry in listed:
        try:
            seen = json.loads((sub / VERIFIED).read_bytes()).get(entry["bin"])
        except (OSError, ValueError, AttributeError):
            seen = None
        st = (sub / entry["bin"]).stat()
        if not (isinstance(seen, dict) and seen.get("size") == st.st_size and seen.get("mtime_ns") == st.st_mtime_ns
                and seen.get("sha256") == entry.get("sha256")):
            unvouched.append((sub, entry, st.st_size))
    if not unvouched:
        return {"checked": f"each shard's sha256, when first read (remembered in {VERIFIED})"}
    if sum(size for *_, size in unvouched) > HASH_NOW:
        return {"checked": f"not since written or changed ({len(unvouched):,} of {len(listed):,} shards): mmtok "
                           "train checks each shard's sha256 before its first step"}
    bad = [sub / e["bin"] for sub, e, _ in unvouched if files_sha256([sub / e["bin"]]) != e.get("sha256")]
    if not bad:
        return {"checked": "each shard's sha256, now"}
    return {"checked": "each shard's sha256, now",
            "damaged": [f"{b}: its bytes do not match the sha256 its manifest lists (changed or damaged since "
                        "written); tokenize the corpus again (mmtok tokenize ... --restart)" for b in bad]}


def _run(folder: Path) -> dict[str, Any]:
    """A ``mmtok train`` run folder, described from its newest checkpoint that loads (as ``sample`` and ``export-hf``
    load it: whole files, finite weights), the newer damaged ones named; its losses are those of the log's rows up
    to that checkpoint's step (rows after it are work a ``--resume`` does again)."""
    ckpts = checkpoint_folders(folder)
    use, damaged = newest_loadable(folder)
    meta = read_config(use)
    cfg = meta["config"]
    model, train = cfg.get("model", {}), cfg.get("train", {})
    params = _parameters(_transformer(use, meta))
    step = (meta.get("train") or {}).get("step")
    logged = read_log(folder)  # read once: the newest row, and the newest loss of each modality
    rows = [r for r in logged if not isinstance(step, int) or r["step"] <= step]
    last = rows[-1] if rows else {}
    losses, steps = _last_losses(rows)
    extra: dict[str, Any] = {}
    if damaged:
        newer = {name: newer_config(folder / name) for name in damaged}
        said = [f"{name}: {why}" for name, why in damaged.items() if newer[name] is None]
        extra["damaged"] = said or None
        extra["newer"] = [f"{name}: saved by a newer mmtok (format_version {cfg['format_version']}; this one reads "
                          f"{FORMAT_VERSION}): upgrade mmtok to read it; a --resume by this one is refused, and "
                          "nothing in the run is moved" for name, cfg in newer.items() if cfg] or None
        extra["described_from"] = f"{use.name}, the newest checkpoint that loads"
    if len(logged) > len(rows):
        after = [r["step"] for r in logged[len(rows):]]
        extra["logged_after_it"] = (f"steps {after[0]}-{after[-1]}, in no checkpoint that loads (a --resume trains "
                                    f"them again from step {step})")
    return {
        "what": "run", "path": str(folder), "running": running(folder),
        "step": step, "steps": train.get("steps"),
        "checkpoints": [p.name for p in ckpts], **extra, "read_from": _read_from(use, meta),
        "recover": (f"mmtok train --resume --out {folder} puts it back as {use.name} before it trains (or: mv "
                    f"{meta['_path']} {use})" if _read_from(use, meta) else None),
        "leftovers": leftovers(folder),
        "preset": train.get("preset"),
        "parameters": params,
        "model": {k: model.get(k) for k in ("n_layer", "d_model", "n_head", "max_seq_len") if k in model},
        "data": train.get("data"), "last_loss": last.get("loss"),
        "last_loss_by_modality": losses,
        "last_loss_step_by_modality": steps if len(set(steps.values())) > 1 else None,
        "vocab_size": model.get("vocab_size"), "fingerprint": cfg.get("fingerprint"),
        "tokenizers": (vocab_tokenizers(Vocabulary.from_dict(cfg["vocab"], where=f"{ckpts[-1]}/config.json"))
                       if cfg.get("vocab") else None),
    }


def _read_from(folder: Path, meta: dict[str, Any]) -> str | None:
    """The backup the checkpoint ``folder`` was read from (its config ``meta`` says where), None when it was read
    in place."""
    found = Path(meta["_path"])
    return None if found == folder else f"{found} (a save stopped between its two renames left it)"


def _last_losses(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """The newest logged loss of each modality in a run's log (its ``rows``, :func:`~mmtok.lm.runs.read_log`), and
    the step it was logged at: a step's row has only the modalities its batch held, so the log is read back until
    each has been found (or it ends)."""
    losses: dict[str, float] = {}
    steps: dict[str, int] = {}
    for row in reversed(rows):
        for m in MODALITIES:
            if m not in losses and isinstance(row.get(f"loss_{m}"), (int, float)):
                losses[m], steps[m] = row[f"loss_{m}"], row["step"]
        if len(losses) == len(MODALITIES):
            break
    order = [m for m in MODALITIES if m in losses]
    return {m: losses[m] for m in order}, {m: steps[m] for m in order}


def _parameters(module: torch.nn.Module) -> int:
    """The module's parameters (each ``nn.Parameter`` once: a tied output head is the embedding), not its buffers
    (a VQ codebook and its EMA statistics, feature statistics): what training by gradient changes."""
    return sum(p.numel() for p in module.parameters())


def _checkpoint_parameters(folder: Path, meta: dict[str, Any]) -> int | None:
    """:func:`_parameters` of the module in the checkpoint ``folder`` (config ``meta``); None for a text tokenizer,
    which is no module. A media tokenizer's are counted once it is loaded (:func:`_tokenizer_summary`)."""
    kind = meta.get("kind")
    if kind in MEDIA_KINDS or kind == "text":
        return None
    return _parameters(_transformer(folder, meta) if kind == Transformer.KIND else load(folder))


def _transformer(folder: Path, meta: dict[str, Any]) -> Transformer:
    """The transformer of the checkpoint ``folder`` (config ``meta``), built on the meta device: its shapes, no
    weights read and no memory taken."""
    cfg = config_from_dict(ModelConfig, (meta.get("config") or {}).get("model") or {},
                           where=f"{folder}/{CONFIG_NAME} model")
    with torch.device("meta"):
        return Transformer(cfg)


def _checkpoint(folder: Path) -> dict[str, Any]:
    meta = read_config(folder)
    prov = meta.get("provenance") or {}
    weights = Path(meta["_path"]) / WEIGHTS_NAME  # the folder read: ``folder``, or its backup
    out: dict[str, Any] = {
        "what": "checkpoint", "path": str(folder), "read_from": _read_from(folder, meta), "kind": meta.get("kind"),
        "step": _saved_at(meta), "model_version": prov.get("model_version") if isinstance(prov, dict) else None,
        "created": meta.get("created"), "mmtok_version": meta.get("mmtok_version"),
        "megabytes": round(weights.stat().st_size / 1e6, 1) if weights.is_file() else None,
        "parameters": _checkpoint_parameters(folder, meta) if weights.is_file() else None,
    }
    if isinstance(prov, dict) and prov.get("chosen_on"):
        out["chosen_on"] = prov["chosen_on"]
    if meta.get("kind") in MEDIA_KINDS:
        return _tokenizer_summary(out, load(folder))
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    if meta.get("kind") == "transformer":  # one checkpoint of a training run: its step and vocabulary
        model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
        out |= {"vocab_size": model.get("vocab_size"), "fingerprint": cfg.get("fingerprint")}
    elif meta.get("kind") == "text":  # a BPE (mmtok train-tokenizer text): its ids and the fingerprint shards record
        out |= {"vocab_size": cfg.get("vocab_size"), "fingerprint": cfg.get("fingerprint")}
    return out


def _saved_at(meta: dict[str, Any]) -> int | None:
    """The training step a checkpoint (its config ``meta``) holds: a train state's step, or the ``steps`` the
    provenance of a trained model records (a tokenizer trainer's ``model/``); None when neither says."""
    train, prov = meta.get("train"), meta.get("provenance")
    step = train.get("step") if isinstance(train, dict) else prov.get("steps") if isinstance(prov, dict) else None
    return step if type(step) is int else None


def _tokenizer_summary(out: dict[str, Any], tok: Any) -> dict[str, Any]:
    vq = getattr(tok, "vq", None) or getattr(getattr(tok, "image", None), "vq", None)
    out = {**out, "parameters": _parameters(tok), "codebook_size": tok.codebook_size}
    if vq is not None:
        k, dim = vq.embed.shape  # (K, d)
        out["codebook"] = f"{k:,} codes of {dim} values (EMA-updated buffers, not among the parameters)"
    out["fingerprint"] = tok.fingerprint
    if vq is not None:  # codes on one point as another: encode never gives them
        table = vq.twin_table()
        twins = int((table != torch.arange(table.numel(), device=table.device)).sum())
        if twins:
            out["twin_codes"] = f"{twins} (on the point of an earlier code: encode gives that one)"
    for name in ("sample_rate", "tokens_per_second", "grid"):
        value = getattr(tok, name, None)
        if value is not None:
            out[name] = list(value) if isinstance(value, tuple) else value
    if hasattr(tok, "vocoder"):  # audio: what decode turns the log-mel into sound with
        out["decoder"] = "griffin-lim" if tok.vocoder is None else _vocoder_summary(tok.vocoder.cfg)
        if tok.decode_lookahead is not None:  # decode_stream's delay
            out["stream_lookahead"] = f"{tok.decode_lookahead} tokens ({tok.decode_lookahead / tok.tokens_per_second:g} s)"
    return out


def _vocoder_summary(cfg: Any) -> str:
    """``learned vocoder`` and its level correction after decoding, if any."""
    if not cfg.mel_match:
        return "learned vocoder"
    passes = "pass" if cfg.mel_match == 1 else "passes"
    return f"learned vocoder + mel match ({cfg.mel_match} {passes}, at most {cfg.mel_match_db:g} dB)"


def _shown(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """The rows of ``d`` :func:`format_info` shows: those with a value, less the title's ``what`` and ``path``."""
    return [(k, v) for k, v in d.items() if k not in ("what", "path") and v is not None and not (
        isinstance(v, (dict, list)) and not v)]


def format_info(d: dict[str, Any]) -> str:
    """``describe``'s answer as aligned ``name  value`` lines under a title line; a nested summary (a tokenizer
    run's model) is indented under its name, its rows shown as the top ones are. The step a run reached and the
    steps it was asked for are one row.

    >>> print(format_info({"what": "run", "path": "r", "step": 3, "steps": 10, "model": {"what": "checkpoint",
    ...                    "path": "r/m", "model_version": None, "grid": [16, 16]}}))
    run: r
      step    3 of 10
      model
        grid  16, 16
    """
    head = f"{d['what']}: {d['path']}"
    if type(d.get("step")) is int and type(d.get("steps")) is int:
        d = {k: f"{v:,} of {d['steps']:,}" if k == "step" else v for k, v in d.items() if k != "steps"}
    rows = _shown(d)
    nested = {k: _shown(v) for k, v in rows if isinstance(v, dict)}
    width = max([len(k) for k, _ in rows] + [len(kk) + 2 for sub in nested.values() for kk, _ in sub], default=0)
    lines = [head]
    for k, v in rows:
        if isinstance(v, dict):
            lines.append(f"  {k}")
            lines += [f"    {kk:<{width - 2}}  {_fmt(vv)}" for kk, vv in nested[k]]
        else:
            lines.append(textwrap.fill(f"  {k:<{width}}  {_fmt(v)}", WRAP, subsequent_indent=" " * (width + 4),
                                       break_long_words=False, break_on_hyphens=False))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    """One value as a row shows it: a list of sentences (damage, leftovers) apart by "; ", of names by ", "."""
    if isinstance(v, list):
        return ("; " if any(" " in str(x) for x in v) else ", ").join(map(str, v))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"
