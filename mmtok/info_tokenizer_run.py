"""What ``mmtok info RUN`` says of a tokenizer trainer's run folder (``mmtok train-tokenizer image|audio|vocoder
--out RUN``): the step its train state reached next to the steps it was asked for, whether that state is whole
as ``--resume`` reads it (a damaged one named, with its file and what is wrong), what ``--resume`` will do, and how
the exported model (``RUN/model``) and a vocoder run's best checkpoint (``RUN/best``) stand against the state.

As for an ``mmtok train`` run (whose damaged checkpoints are listed and passed over), the run is described from
what a resume can start from; a tokenizer run keeps one train state, so a damaged one leaves no step to report,
only the step its config recorded. Everything is read, nothing is written, put back or locked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmtok.audio.vocoder_settings import BEST_DIR, BEST_TOKENIZER_DIR, TOKENIZER_DIR
from mmtok.core.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    read_config,
    read_header,
)
from mmtok.core.errors import CheckpointError
from mmtok.core.run_folder import TOKENIZER_MODEL_DIR, TOKENIZER_STATE_DIR, holds_train_state
from mmtok.core.run_lock import run_holder
from mmtok.core.trainstate import check_train_state
from mmtok.info_export import leftovers

__all__ = ["describe_tokenizer_run", "holds_tokenizer_run", "newer_config", "running"]

STATE, MODEL, BEST = TOKENIZER_STATE_DIR, TOKENIZER_MODEL_DIR, BEST_DIR  # BEST: a vocoder run's best checkpoint
READ_FROM = "(a save stopped between its two renames left it; --resume puts it back)"


def running(folder: Path) -> str | None:
    """Whether a training process holds run folder ``folder`` now (its lock, :func:`~mmtok.core.run_lock.run_holder`):
    what ``mmtok info`` says of it may move while it runs. None when none does."""
    return _running(run_holder(folder))


def _running(holder: str | None) -> str | None:
    return None if holder is None else f"yes, by {holder}: the figures are those of its newest save"


def holds_tokenizer_run(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer trainer's run: its train state or its exported model (in place, or as
    the backup a save killed between its two renames left)."""
    return folder.is_dir() and any(holds_train_state(folder, state_dir=name) for name in (STATE, MODEL))


def describe_tokenizer_run(folder: Path, describe_model: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``mmtok info`` of the tokenizer run in ``folder``: ``step`` (the step of its train state, None when that is
    damaged or missing), ``steps`` (asked for), ``damaged`` (``"NAME: why"`` for a damaged train state or model),
    ``resume`` (what ``--resume`` does, in words), ``model`` (``describe_model`` of ``RUN/model``), ``model_note``
    (a model behind the train state, or none yet), ``best`` (a vocoder run's best step), ``last_loss`` and
    ``leftovers`` (:func:`~mmtok.info_export.leftovers`: what a writer killed part-way left)."""
    state_dir = folder / STATE
    meta = _state_config(state_dir)
    damaged: dict[str, str] = {}
    step = None
    if holds_train_state(folder):
        try:
            step = check_train_state(state_dir)
        except CheckpointError as e:
            recorded = _train(meta).get("step")
            damaged[STATE if recorded is None else f"{STATE} (saved at step {recorded})"] = str(e)
    newer = newer_config(state_dir)
    model: dict[str, Any] | None = None
    if holds_train_state(folder, state_dir=MODEL):
        try:
            model = describe_model(folder / MODEL)
        except CheckpointError as e:
            damaged[MODEL] = str(e)
    steps = _steps_asked(meta)
    holder = run_holder(folder)
    kind = meta.get("kind") or (model or {}).get("kind") or (newer or {}).get("kind")
    out: dict[str, Any] = {"what": "tokenizer run", "path": str(folder), "running": _running(holder),
                           "kind": kind if isinstance(kind, str) else None, "step": step, "steps": steps}
    if step is not None and meta.get("_path") != str(state_dir):
        out["read_from"] = f"{meta['_path']} {READ_FROM}"
    if damaged:
        out["damaged"] = [f"{name}: {why}" for name, why in damaged.items()]
    out["resume"] = (f"refused while {holder} holds the folder: wait for that run to end" if holder is not None else
                     f"refused (exit 2): its {STATE}/ was saved by a newer mmtok (format_version "
                     f"{newer['format_version']}; this one reads {FORMAT_VERSION}): upgrade mmtok to resume it"
                     if newer is not None and step is None else _resume(folder, step, steps, meta, model))
    out["last_loss"] = _last_loss(folder, meta, step)
    out["best"] = _best(folder, meta, step)
    out["tuned_tokenizers"] = _tuned_tokenizers(folder)
    out["model_note"] = _model_note(out["kind"], step, model, MODEL in damaged)
    out["leftovers"] = leftovers(folder)
    out["model"] = model
    return out


def _state_config(state_dir: Path) -> dict[str, Any]:
    """The train state's config (``read_config``'s, ``_path`` where it was read); {} when it is missing or cannot
    be read (the damage :func:`~mmtok.core.trainstate.check_train_state` reports)."""
    try:
        return read_config(state_dir)
    except CheckpointError:
        return {}


def newer_config(state_dir: Path) -> dict[str, Any] | None:
    """The config of the train state in ``state_dir`` when a newer mmtok saved it (a ``format_version`` above
    :data:`~mmtok.core.checkpoint.FORMAT_VERSION`: not damage, an upgrade reads it); None otherwise."""
    try:
        raw = json.loads((state_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    return raw if type(version) is int and version > FORMAT_VERSION else None


def _train(meta: dict[str, Any]) -> dict[str, Any]:
    train = meta.get("train")
    return train if isinstance(train, dict) else {}


def _steps_asked(meta: dict[str, Any]) -> int | None:
    """The ``--steps`` a run was asked for, as its train state records its settings: under its ``extra`` (the image
    and audio trainers) or its provenance (the vocoder trainer); None for a state saved before they were kept."""
    extra = _train(meta).get("extra")
    prov = meta.get("provenance")
    for record in ((extra or {}) if isinstance(extra, dict) else {}, (prov or {}) if isinstance(prov, dict) else {}):
        settings = record.get("settings")
        if isinstance(settings, dict) and type(settings.get("steps")) is int:
            return int(settings["steps"])
    return None


def _resume(folder: Path, step: int | None, steps: int | None, meta: dict[str, Any],
            model: dict[str, Any] | None) -> str:
    """What ``--resume`` into ``folder`` does, in words."""
    if step is None:
        why = (f"its {STATE}/ is damaged (above)" if meta or holds_train_state(folder)
               else f"it holds no {STATE}/ to continue from")
        start = (f", or start a new run from this one's model with --init-from {folder / MODEL} (a fresh schedule)"
                 if model is not None else "")
        return f"refused (exit 2): {why}; train into a new --out{start}"
    if steps is None:
        return f"continues from step {step:,}"
    if step < steps:
        return f"continues from step {step:,} to {steps:,}"
    return f"nothing to train: the run reached its --steps {steps:,}; a larger --steps extends it"


def _model_note(kind: str | None, step: int | None, model: dict[str, Any] | None, damaged: bool) -> str | None:
    """How ``RUN/model`` stands against the train state at ``step``: behind it (a stop between the two saves, or an
    audio run that exports at its end), or not written yet; None when it is the state's step, or nothing says."""
    if step is None or damaged:
        return None
    if model is None:
        when = "when the run reaches its --steps" if kind == "audio" else "at its next checkpoint"
        return f"none yet: the {kind or 'tokenizer'} trainer writes {MODEL}/ {when} (--resume goes on to it)"
    if isinstance(model.get("step"), int) and model["step"] < step:
        return (f"{MODEL}/ holds step {model['step']:,}, behind the train state's step {step:,}: --resume writes it "
                "anew")
    return None


def _best(folder: Path, meta: dict[str, Any], step: int | None) -> str | None:
    """A vocoder run's best checkpoint: its step and validation figure as the train state records them, and the
    step ``RUN/best`` holds when that is behind (a stop before it was written)."""
    extra = _train(meta).get("extra")
    if step is None or not isinstance(extra, dict) or type(extra.get("best_step")) is not int:
        return None
    prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    score = extra.get("best_score")
    said = f"step {extra['best_step']:,}" + (f", {prov.get('best_by', 'score')} {score:.4g}"
                                             if isinstance(score, (int, float)) else "")
    try:
        held = (read_config(folder / BEST).get("provenance") or {}).get("steps")
    except CheckpointError:
        held = None
    if isinstance(held, int) and held != extra["best_step"]:
        said += f" ({BEST}/ holds step {held:,} until --resume writes it)"
    return said


def _tuned_tokenizers(folder: Path) -> str | None:
    """A vocoder run with ``--train-decoder``: the audio tokenizers whose decoder it tuned, written beside its
    vocoders (``RUN/tokenizer`` pairs with ``RUN/model``, ``RUN/best-tokenizer`` with ``RUN/best``), each with the
    step it holds or what is wrong with it; None for other runs."""
    said = []
    for name, pair in ((TOKENIZER_DIR, MODEL), (BEST_TOKENIZER_DIR, BEST)):
        if not holds_train_state(folder, state_dir=name):
            continue
        try:
            steps = (read_config(folder / name).get("provenance") or {}).get("steps")
            read_header(folder / name / WEIGHTS_NAME)  # a file cut short is damaged, as a load would find it
            said.append(f"{name}/ (step {steps:,}), for {pair}/" if isinstance(steps, int) else f"{name}/, for {pair}/")
        except CheckpointError as e:
            said.append(f"{name}/ damaged: {e}")
    return "; ".join(said) + ": the audio tokenizer whose decoder --train-decoder tuned" if said else None


def _last_loss(folder: Path, meta: dict[str, Any], step: int | None) -> float | None:
    """The loss of the run's last steps up to its train state's ``step``: the state's own record (audio), the
    running mean ``summary.json`` keeps when written at that step (image), or the log's row (vocoder)."""
    if step is None:
        return None
    extra = _train(meta).get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("loss"), (int, float)):
        return float(extra["loss"])
    summary = _json(folder / "summary.json")
    means = summary.get("running_means")
    if summary.get("steps") == step and isinstance(means, dict) and isinstance(means.get("loss"), (int, float)):
        return float(means["loss"])
    log = folder / "log.jsonl"
    rows = [_row(line) for line in (log.read_text(errors="replace").splitlines() if log.is_file() else [])]
    losses = [r["loss"] for r in rows if type(r.get("step")) is int and r["step"] <= step
              and isinstance(r.get("loss"), (int, float))]
    return float(losses[-1]) if losses else None


def _json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing or not one (a file a kill cut short)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _row(line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:  # a line a kill cut short
        return {}
    return row if isinstance(row, dict) else {}
