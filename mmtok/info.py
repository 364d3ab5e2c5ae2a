"""What a path holds, in a few lines: a shard folder, a training run, or a checkpoint.

``mmtok info PATH`` prints :func:`describe`'s answer through :func:`format_info`
(or as JSON with ``--json``). Nothing is trained or changed: shards are read from
their manifests, a run from its newest checkpoint that loads and its log, a tokenizer's
run from its train state (read whole, as ``--resume`` reads it:
:mod:`mmtok.info_tokenizer_run`), and a checkpoint from its ``config.json``; a
checkpoint's module is loaded (a transformer is only built, on the meta device) to
count its parameters, and a media tokenizer to report its fingerprint. A checkpoint a
save killed between its two renames left only as its backup is read there, as
:func:`mmtok.load` reads it (``read_from`` names it); nothing is put back or locked:
describing writes nothing.

>>> format_info({"what": "demo", "path": "x", "size": 3})
'demo: x\\n  size  3'
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import torch

from mmtok.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, config_from_dict, read_config
from mmtok.core.errors import CheckpointError, MissingFileError
from mmtok.core.module_io import resolve_checkpoint
from mmtok.core.run_lock import LOCK_NAME, run_holder
from mmtok.data.codes import CODES_SUFFIX, load_codes
from mmtok.data.media_files import MEDIA_SUFFIXES, media_kind
from mmtok.data.shards import MANIFEST, open_shards
from mmtok.info_tokenizer_run import describe_tokenizer_run, holds_tokenizer_run, running
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.runs import MODALITIES, checkpoint_folders, newest_loadable, read_log
from mmtok.pretrained import load
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
    if (export := _export(p)) is not None:
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
                              f"({CONFIG_NAME}): nothing to describe")
    if (hf := _transformers_model_type(folder)) is not None:
        raise CheckpointError(f"{p} is a transformers model folder (model_type {hf!r}), as mmtok export-hf writes "
                              "it, not an mmtok checkpoint: load it with transformers "
                              "(AutoModelForCausalLM.from_pretrained); mmtok's id space is in its "
                              "mmtok_vocab.json")
    return _checkpoint(folder)


def _transformers_model_type(folder: Path) -> str | None:
    """The ``model_type`` of a transformers folder's ``config.json`` (not mmtok's format); None otherwise."""
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or "format" in meta or not isinstance(meta.get("model_type"), str):
        return None
    return meta["model_type"]


EXPORT_COLUMNS = ["doc", "ids", "modality", "source"]  # the rows mmtok export writes to parquet and datasets


def _export(p: Path) -> dict[str, Any] | None:
    """What ``mmtok export`` wrote at ``p`` (a Parquet file, a datasets folder or a bin folder): its format, its
    documents (and tokens, for bin) and the vocabulary or mark it records; None when ``p`` is none of them.
    Exports of earlier releases carry no mark: known by their columns, said so."""
    out: dict[str, Any] = {"what": "export", "path": str(p)}
    meta = p / "meta.json"
    if p.is_dir() and meta.is_file():
        record = _json(meta)
        if record.get("format") != "mmtok-tokens-bin":
            return None
        vocab = Vocabulary.from_dict(record["vocab"], where=str(meta)) if isinstance(record.get("vocab"), dict) else None
        return out | {"format": "bin (mmtok export --to bin)", "documents": record.get("docs"),
                      "tokens": record.get("tokens"), "dtype": record.get("dtype"),
                      "vocab_size": record.get("vocab_size"), "fingerprint": record.get("fingerprint"),
                      "tokenizers": _vocab_tokenizers(vocab) if vocab is not None else None}
    if p.is_dir() and (p / "dataset_info.json").is_file() and (p / "state.json").is_file():
        info = _json(p / "dataset_info.json")
        if sorted(info.get("features") or {}) != EXPORT_COLUMNS:
            return None
        splits = info.get("splits") if isinstance(info.get("splits"), dict) else {}
        rows = sum(int(v.get("num_examples", 0)) for v in splits.values() if isinstance(v, dict))
        mark = _json(p / "mmtok_export.json") if (p / "mmtok_export.json").is_file() else None
        return out | {"format": "datasets (mmtok export --to datasets)", "documents": rows,
                      "fingerprint": (mark or {}).get("fingerprint"), "mark": _mark_note(mark),
                      "tokenizers": _mark_tokenizers(mark, p / "mmtok_export.json")}
    if p.is_file() and (p.suffix.lower() == ".parquet" or _starts_with(p, PARQUET_MAGIC)):  # any name export took
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise CheckpointError(f"{p} is a Parquet file; describing it needs pyarrow: pip install 'mmtok[hf]'") from None
        try:
            pf = pq.ParquetFile(p)
        except (OSError, ValueError) as e:  # pyarrow's own (ArrowInvalid, ArrowIOError) for a damaged file
            raise CheckpointError(f"{p} is not a readable Parquet file ({e})") from None
        if sorted(pf.schema_arrow.names) != EXPORT_COLUMNS:
            raise CheckpointError(f"{p} is a Parquet file with the columns {', '.join(pf.schema_arrow.names)}, not an "
                                  f"mmtok export ({', '.join(EXPORT_COLUMNS)}): nothing to describe")
        raw = (pf.schema_arrow.metadata or {}).get(b"mmtok_export")
        mark = json.loads(raw) if raw else None
        return out | {"format": "parquet (mmtok export --to parquet)", "documents": pf.metadata.num_rows,
                      "fingerprint": (mark or {}).get("fingerprint"), "mark": _mark_note(mark),
                      "tokenizers": _mark_tokenizers(mark, f"{p} (schema metadata mmtok_export)")}
    return None


PARQUET_MAGIC = b"PAR1"  # the first (and last) bytes of every Parquet file


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; anything else a :class:`CheckpointError` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} cannot be read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def _mark_tokenizers(mark: Any, where: object) -> dict[str, str] | None:
    """The tokenizers of the vocabulary an export's mark records (as a bin export's ``meta.json``); None without
    one (an export of an earlier mmtok)."""
    vocab = mark.get("vocab") if isinstance(mark, dict) else None
    return _vocab_tokenizers(Vocabulary.from_dict(vocab, where=str(where))) if isinstance(vocab, dict) else None


def _mark_note(mark: dict[str, Any] | None) -> str:
    """The mark an export records, in words (an export of an earlier mmtok has none)."""
    if not isinstance(mark, dict):
        return "none (an export of an earlier mmtok: its vocabulary is not recorded)"
    return f"{mark.get('format')} v{mark.get('format_version')}"


def _code_file(path: Path) -> dict[str, Any]:
    """A code file from ``mmtok encode``: its codes, what made them, and whether the shipped models of its
    kind still read them (same vocabulary fingerprints, and every code within its codebook)."""
    codes, meta, audio_codes = load_codes(path)
    out: dict[str, Any] = {"what": "code file", "path": str(path), "kind": meta["kind"], "source": meta.get("source"),
                           "shape": list(codes.shape), "tokens": int(codes.size)}
    out |= {k: meta[k] for k in ("seconds", "fps", "model", "model_version", "fingerprint", "codebook_size")
            if k in meta}
    def readable(arr: Any, tok: Any, fingerprint: Any) -> bool:  # its model, and codes that model has
        return fingerprint == tok.fingerprint and (arr.size == 0 or 0 <= int(arr.min()) <= int(arr.max()) < tok.codebook_size)

    reads = readable(codes, load(meta["kind"]), meta.get("fingerprint"))
    if audio_codes is not None:
        sound = meta.get("audio") or {}
        out["soundtrack"] = {"tokens": int(audio_codes.size), "seconds": sound.get("seconds"),
                             "model_version": sound.get("model_version"), "fingerprint": sound.get("fingerprint")}
        reads = reads and readable(audio_codes, load("audio"), sound.get("fingerprint"))
    out["shipped_model_reads_it"] = reads
    return out


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
        "tokenizers": _vocab_tokenizers(s.vocab),
    }


def _vocab_tokenizers(vocab: Vocabulary) -> dict[str, str]:
    """Each modality of a vocabulary: its id range size and the tokenizer that made it (its label; a tokenizer
    without one, by its fingerprint)."""
    out = {"text": f"{vocab.text_size:,} ids ({vocab.sources.get('text', '?')})"}
    for kind in vocab.media:
        made_by = vocab.labels.get(kind) or f"a tokenizer of fingerprint {vocab.sources.get(kind, '?')}"
        out[kind] = f"{len(vocab.range(kind)):,} ids ({made_by})"
    return out


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
        extra["damaged"] = [f"{name}: {why}" for name, why in damaged.items()]
        extra["described_from"] = f"{use.name}, the newest checkpoint that loads"
    if len(logged) > len(rows):
        after = [r["step"] for r in logged[len(rows):]]
        extra["logged_after_it"] = (f"steps {after[0]}-{after[-1]}, in no checkpoint that loads (a --resume trains "
                                    f"them again from step {step})")
    return {
        "what": "run", "path": str(folder), "running": running(folder),
        "step": step, "steps": train.get("steps"),
        "checkpoints": [p.name for p in ckpts], **extra, "read_from": _read_from(use, meta),
        "preset": train.get("preset"),
        "parameters": params,
        "model": {k: model.get(k) for k in ("n_layer", "d_model", "n_head", "max_seq_len") if k in model},
        "data": train.get("data"), "last_loss": last.get("loss"),
        "last_loss_by_modality": losses,
        "last_loss_step_by_modality": steps if len(set(steps.values())) > 1 else None,
        "vocab_size": model.get("vocab_size"), "fingerprint": cfg.get("fingerprint"),
        "tokenizers": (_vocab_tokenizers(Vocabulary.from_dict(cfg["vocab"], where=f"{ckpts[-1]}/config.json"))
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
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"
