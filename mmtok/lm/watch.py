"""What can change under a training run while it trains: the ``torchrun`` that launched it, and its shard files.

* :func:`stop_with_launcher`: ``torchrun`` starts each rank in a session of its own, so a launcher killed
  outright (``kill -9``, the out-of-memory killer) leaves its ranks training on, holding the run folder's
  lock, with no one to collect them. Under ``torchrun`` each rank watches its launcher and ends when it is
  gone, saying so on stderr; the checkpoints already written stay, and ``--resume`` continues from the newest.
* :class:`HeldShards`: the shards are read from their files at every step (no file is held open), so a
  shard folder tokenized again while a run reads it would feed it other documents than the ones its
  checkpoints record. Before each checkpoint the files are looked at again (their size, time and inode;
  the sha256 of one that changed): shards with other contents stop the run with no checkpoint written
  for the step, naming the shard.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import torch.distributed as dist

from mmtok.core.errors import TrainingError
from mmtok.data.digest import files_sha256
from mmtok.data.shards import ShardSet

__all__ = ["LAUNCHER_EXIT", "WATCH_SECONDS", "HeldShards", "stop_with_launcher"]

WATCH_SECONDS = 0.5  # how often a rank looks for its launcher
LAUNCHER_EXIT = 1  # the exit status of a rank whose launcher is gone
_watching: set[int] = set()  # the launcher pids this process watches already (a thread each)


def stop_with_launcher(folder: Path, *, rank: int) -> bool:
    """Under ``torchrun`` (``TORCHELASTIC_RUN_ID`` set), end this process when the process that launched it is
    gone, with one line on stderr naming ``rank`` and ``folder``; whether a watch runs (one per launcher).

    Nothing is watched outside ``torchrun``, or when the parent is already gone (``init``'s child: nothing to
    watch for)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return False
    parent = os.getppid()
    if parent <= 1:
        return False
    if parent not in _watching:
        _watching.add(parent)
        threading.Thread(target=_watch, args=(parent, Path(folder), rank), daemon=True,
                         name="mmtok-launcher-watch").start()
    return True


def _watch(parent: int, folder: Path, rank: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    print(f"mmtok train: rank {rank} stops: the torchrun that launched it (pid {parent}) is gone; the checkpoints "
          f"in {folder} stay, and the same torchrun command with --resume continues from the newest",
          file=sys.stderr, flush=True)
    os._exit(LAUNCHER_EXIT)  # the run folder's lock names this pid: the next run takes it over


class HeldShards:
    """The shard files a run reads, as they were when it opened them (:meth:`changed` says which differ now)."""

    def __init__(self, shards: ShardSet) -> None:
        entries = [e for m in shards.manifests for e in m["shards"]]
        self.folder = shards.folder
        self.files = [(f.path, str(e["sha256"])) for f, e in zip(shards.tokens, entries, strict=True)]
        self.seen = [_stat(path) for path, _ in self.files]

    def changed(self) -> Path | None:
        """The first shard file whose contents are no longer those the run opened (missing, or another sha256),
        else None. A file only rewritten with the same bytes (the same corpus tokenized again) is not one."""
        for k, (path, sha) in enumerate(self.files):
            now = _stat(path)
            if now == self.seen[k]:
                continue
            if now is None or files_sha256([path]) != sha:
                return path
            self.seen[k] = now
        return None

    def check(self, *, step: int, kept: str | None, every_rank: bool = False) -> None:
        """A :class:`TrainingError` when :meth:`changed` names a shard (with ``every_rank``: on any rank of the
        process group, and then on every rank, so none is left waiting): the run has read it since it changed,
        and no checkpoint is written for ``step``; ``kept``: the name of the run's newest checkpoint, if any."""
        path = self.changed()
        if every_rank:
            seen: list[str | None] = [None] * dist.get_world_size()
            dist.all_gather_object(seen, None if path is None else str(path))
            path = next((Path(p) for p in seen if p is not None), None)
        if path is not None:
            raise TrainingError(changed_message(path, self.folder, step=step, kept=kept))


def changed_message(path: Path, folder: Path, *, step: int, kept: str | None) -> str:
    """The one line that stops a run at ``step`` whose shard ``path`` (in ``folder``) changed while it trained;
    ``kept``: the run's newest checkpoint (None: none yet)."""
    since = f"since {kept}" if kept else "of this run"
    return (f"{path} changed while this run trained on the shards in {folder} (tokenized again, edited or removed): "
            f"the steps {since} may have read other documents than the run records, so no checkpoint is written "
            f"for step {step}; put the shards back as they were and --resume (from the newest checkpoint), or "
            "train these shards into a new --out")


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
