"""``--resume`` of a training run, one rule for every tokenizer trainer (image, audio, vocoder; ``mmtok train``
words its refusals with :func:`setting_differences` too): the options left out of
the command line take the run's own settings; one given with another value than the run's is refused in one
line (:class:`~mmtok.core.errors.ResumeMismatchError`, exit 2) before any work; ``--steps`` left out is the
run's own (at least the step it reached), and a given one may extend the run but not fall below that step.

>>> import argparse
>>> args = argparse.Namespace(lr=0.01, seed=0, steps=100)
>>> take_run_settings(args, {"steps"}, {"lr": 0.02, "seed": 3, "steps": 50}, where="run", reached=40,
...                   fixed=("lr", "seed"))
>>> (args.lr, args.seed, args.steps)
(0.02, 3, 100)
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmtok.core.checkpoint import CONFIG_NAME
from mmtok.core.checkpoint_names import checkpoint_source
from mmtok.core.errors import CheckpointError, ResumeMismatchError

__all__ = ["check_decoder_only", "reading_state_to_resume", "said", "setting_differences", "take_run_settings"]



def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), for comparing a given value with a saved one."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def said(dest: str, value: Any) -> str:
    """The value of option ``dest`` as a command line gives it: ``none`` for one left unset, ``6`` for 6.0,
    lists as JSON gives them."""
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(_plain(value))


def _difference(dest: str, given: Any, was: Any, show: Callable[[str, Any], str]) -> str:
    if isinstance(given, bool) or isinstance(was, bool):  # a switch: --rotate (the run's: no --rotate)
        return f"{'' if given else 'no '}{_flag(dest)} (the run's: {'' if was else 'no '}{_flag(dest)})"
    return f"{_flag(dest)} {show(dest, given)} (the run's: {show(dest, was)})"


def _same(dest: str, given: Any, was: Any, folders: Sequence[str]) -> bool:
    if dest in folders and given is not None and was is not None:  # a folder: ./m and m alike
        return checkpoint_source(str(given)) == checkpoint_source(str(was))
    return bool(_plain(given) == _plain(was))


def setting_differences(values: Mapping[str, Any], saved: Mapping[str, Any], names: Iterable[str], *,
                        folders: Sequence[str] = ("init_from", "tokenizer"),
                        show: Callable[[str, Any], str] = said) -> list[str]:
    """``"--lr 0.02 (the run's: 0.01)"`` for each of ``names`` present in both ``values`` (the options
    given) and ``saved`` (the run's) with another value, each value as ``show(dest, value)`` says it; ``folders``
    are compared as the checkpoint folders they name."""
    return [_difference(dest, values[dest], saved[dest], show) for dest in names
            if dest in values and dest in saved and not _same(dest, values[dest], saved[dest], folders)]


def take_run_settings(args: argparse.Namespace, given: set[str], saved: Mapping[str, Any], *, where: str,
                      reached: int, fixed: Iterable[str], free: Sequence[str] = (), diffs: Sequence[str] = (),
                      folders: Sequence[str] = ("init_from", "tokenizer"),
                      show: Callable[[str, Any], str] = said) -> None:
    """``--resume`` of the run in ``where``, saved with the settings ``saved`` at step ``reached``.

    Each option of ``fixed`` given (its dest in ``given``) with another value than the run's is refused, with
    ``diffs`` (differences the caller found itself, e.g. in the model's config) in the same one line. Then the
    options of ``fixed`` and ``free`` left out take the run's values; ``--steps`` left out becomes the run's own
    ``steps`` (the step reached where it recorded none, or recorded less), and a given one below ``reached`` is
    refused. Options the run did not record keep their command-line values."""
    fixed = tuple(fixed)
    found = [*diffs, *setting_differences({d: getattr(args, d) for d in fixed if d in given}, saved, fixed,
                                          folders=folders, show=show)]
    if found:
        may = ", ".join(map(_flag, ("steps", *free)))
        raise ResumeMismatchError(f"--resume {where}: {'; '.join(found)}; a resumed run keeps the settings it was "
                                  f"started with ({may} may change): leave these flags out (the run's own are "
                                  "taken) or train into a new --out")
    if "steps" in given and args.steps < reached:
        raise ResumeMismatchError(f"--steps {args.steps}: {where} has already reached step {reached}; give --steps "
                                  f"{reached} or more to extend it, or leave --steps out")
    for dest in (*fixed, *free):
        if dest in saved and dest not in given:
            setattr(args, dest, saved[dest])
    if "steps" not in given:
        args.steps = max(int(saved.get("steps") or 0), reached)


def check_decoder_only(parser: argparse.ArgumentParser, args: argparse.Namespace, *, resumable: bool) -> None:
    """``--decoder-only`` trains a decoder on the codes of another tokenizer: it needs ``--init-from``, or a
    ``--resume`` of a run (``resumable``: ``--out`` holds its train state); else refused in one line (exit 2),
    before anything is said or written."""
    if not args.decoder_only or args.init_from:
        return
    if not args.resume:
        parser.error("--decoder-only trains on the codes of another tokenizer: give --init-from (or --resume a run)")
    if not resumable:
        parser.error(f"--decoder-only trains on the codes of another tokenizer, and --resume finds no run in "
                     f"{args.out} to continue: give --init-from MODEL")


@contextlib.contextmanager
def reading_state_to_resume(out: str | os.PathLike[str], *, model_dir: str = "model") -> Iterator[None]:
    """The read of a run's train state for ``--resume``, where a :class:`CheckpointError` (a file cut short,
    unreadable or holding a NaN) gets what to do after the file and the problem: train into a new ``--out``, or,
    when the run's exported model (``out/model_dir``) is there, start a new run from it with ``--init-from``."""
    try:
        yield
    except CheckpointError as e:
        model = Path(out) / model_dir
        start = (f", or start a new run from its model with --init-from {model} (a fresh schedule)"
                 if (model / CONFIG_NAME).is_file() else "")
        raise CheckpointError(f"{e}; --resume cannot go on from this run: train into a new --out{start}") from e
