"""Checkpoint folders on disk: replaced atomically, found again after a crash, read consistently.

:func:`replace_folder` has a ``fill`` function write into a hidden temporary folder beside the
target (``.NAME.tmp-PID-XXXXXXXX``), flushes it to disk, renames the target aside as a backup
(``.NAME.old-XXXXXXXX``), renames the temporary folder into its place and removes the backup.
An exception between the two renames renames the backup back; a process killed there leaves
only the backup, which :func:`locate` finds in the target's place and which the next
:func:`replace_folder` takes the other files (notes, samples) of. :func:`read_settled` reads a
folder again when another process replaced it (or removed the backup it read) meanwhile, so a
reader never mixes two saves. A target that is a symlink is written through (:func:`write_target`),
and a name too long to take a tag is shortened with a hash in the hidden names (:func:`sibling_prefix`).

>>> import tempfile
>>> d = Path(tempfile.mkdtemp()) / "ck"
>>> replace_folder(d, lambda tmp: (tmp / "a.txt").write_text("1"), marker="a.txt")
>>> read_settled(d, lambda p: (p / "a.txt").read_text(), marker="a.txt")
'1'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from mmtok.core.errors import CheckpointError

__all__ = ["backup_of", "locate", "pid_alive", "read_settled", "replace_folder", "restore_swaps", "sibling_prefix",
           "swap_folder", "write_target"]

TMP_TAG = ".tmp-"
OLD_TAG = ".old-"
NAME_MAX = 255  # bytes in one file name on the usual file systems
TAG_ROOM = 24  # bytes a tag adds to the prefix at most: ".tmp-" + a process id (7 digits) + "-" + 8 hex digits
SETTLE_TRIES = 8  # reads of a folder that another process keeps replacing before giving up
# the hidden names a killed writer leaves: a backup (.NAME.old-XXXXXXXX), a temporary folder of replace_folder
# (.NAME.tmp-PID-XXXXXXXX) or a temporary file of mmtok.core.files.write_atomic (.NAME.tmp-PID); NAME is the
# name's sibling_prefix without its dot
BACKUP_NAME = re.compile(r"\.(?P<name>.+)\.old-[0-9a-f]{8}")
PID_DIGITS = 7  # the most digits a process id in a temporary name has (what TAG_ROOM leaves room for)
TEMP_NAME = re.compile(rf"\.(?P<name>.+)\.tmp-(?P<pid>[0-9]{{1,{PID_DIGITS}}})(?:-[0-9a-f]{{8}})?")
# a name sibling_prefix shortened (without its dot): the start of a long name, "~" and 8 hex digits of its hash,
# as long as a name may be and still take a tag (a longer name is never shortened that far)
SHORTENED = re.compile(r".+~[0-9a-f]{8}")

T = TypeVar("T")


def sibling_prefix(folder: Path) -> str:
    """What the temporary and backup folders of ``folder`` are named from: ``.NAME``, or, for a name too
    long to take a tag within the 255 bytes a file name may have, its start and a hash of the whole name.

    >>> sibling_prefix(Path("x/ck")), len(sibling_prefix(Path("x") / ("a" * 250)).encode())
    ('.ck', 231)
    """
    full = f".{folder.name}"
    if len(os.fsencode(full)) + TAG_ROOM <= NAME_MAX:
        return full
    digest = hashlib.sha1(os.fsencode(folder.name)).hexdigest()[:8]
    keep = folder.name
    while len(os.fsencode(f".{keep}~{digest}")) + TAG_ROOM > NAME_MAX:
        keep = keep[:-1]
    return f".{keep}~{digest}"


def _siblings(folder: Path, tag: str) -> list[Path]:
    """The temporary (``tag`` :data:`TMP_TAG`) or backup (:data:`OLD_TAG`) folders of ``folder``, oldest first.
    One that vanishes while they are listed (another writer removed it) is left out."""
    prefix = sibling_prefix(folder) + tag
    try:
        entries = [p for p in folder.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:  # no parent folder (yet), or one that cannot be listed
        return []
    dated: list[tuple[float, Path]] = []
    for p in entries:
        with contextlib.suppress(OSError):
            dated.append((p.stat().st_mtime, p))
    return [p for _, p in sorted(dated, key=lambda d: d[0])]


def _holds(folder: Path, marker: str) -> bool:
    """Whether ``folder`` holds the file ``marker`` (False also when it cannot be looked into)."""
    try:
        return (folder / marker).is_file()
    except OSError:
        return False


def backup_of(folder: Path, marker: str) -> Path | None:
    """The newest backup of ``folder`` that holds ``marker``: what a writer killed between its two renames left."""
    for old in reversed(_siblings(folder, OLD_TAG)):
        if _holds(old, marker):
            return old
    return None


def _exists(path: Path) -> bool:
    """Whether anything is at ``path`` (a symlink: its target); True also for what cannot be looked into."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:  # there, but not to be looked into: the reader says why
        return True
    return True


def locate(folder: Path, marker: str) -> Path | None:
    """``folder`` if there is anything of that name, else its newest complete backup (:func:`backup_of`), else
    None. While a save of it is under way (its temporary or backup folders are there) a miss is looked at
    again a few times: the name is briefly missing between a save's two renames."""
    for attempt in range(3):
        if _exists(folder):
            return folder
        backup = backup_of(folder, marker)
        if backup is not None:
            return backup
        if not (_siblings(folder, TMP_TAG) or _siblings(folder, OLD_TAG)):
            return None
        time.sleep(0.002 * (attempt + 1))
    return None


def _stat(path: Path, folder: Path) -> os.stat_result | None:
    """``path``'s stat (through a symlink), None when nothing is there (any more)."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise CheckpointError(f"checkpoint {folder} cannot be read: {e.strerror or e}") from e


def _same(before: os.stat_result, after: os.stat_result | None) -> bool:
    """Whether ``after`` is the folder ``before`` was: a folder renamed in or away changes inode or change time."""
    return after is not None and (before.st_dev, before.st_ino, before.st_ctime_ns) == (
        after.st_dev, after.st_ino, after.st_ctime_ns)


def read_settled(folder: Path, read: Callable[[Path], T], *, marker: str, tries: int = SETTLE_TRIES) -> T:
    """``read(path)`` of ``folder``, or of the backup that a writer killed mid-swap left (:func:`locate`), done
    again when the folder at ``path`` was replaced or removed while it was read (another process saved over
    it): what comes back was read from one save. A :class:`CheckpointError` or ``OSError`` of ``read`` from a
    folder that stayed the same is raised as it is; a folder that never settles is refused after ``tries``."""
    last: Exception | None = None
    for _ in range(tries):
        path = locate(folder, marker)
        if path is None:
            raise CheckpointError(f"no checkpoint at {folder}: the folder does not exist")
        before = _stat(path, folder)
        if before is None:  # removed since it was found: look again
            continue
        if not stat.S_ISDIR(before.st_mode):
            raise CheckpointError(f"checkpoint {folder} is a file, expected a folder with {marker}")
        try:
            result = read(path)
        except (CheckpointError, OSError) as e:
            if _same(before, _stat(path, folder)):
                raise
            last = e
            continue
        if _same(before, _stat(path, folder)):
            return result
    raise CheckpointError(f"checkpoint {folder} kept changing while it was read ({tries} tries): another process "
                          "keeps saving to it; load it once that is done") from last


# --------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may run on this host: False only when the system says no such process runs;
    True also for someone else's process and for an id the system cannot look up (too large, not positive)
    -- what belongs to it is kept."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # someone else's process (PermissionError), or an id not to ask
        return True
    return True


def _temp_owner(name: str) -> tuple[str, int] | None:
    """``(NAME, PID)`` of a temporary name (:data:`TEMP_NAME`: ``.NAME.tmp-PID-XXXXXXXX`` of :func:`replace_folder`,
    ``.NAME.tmp-PID`` of :func:`mmtok.core.files.write_atomic`); None for any other name, one whose number has
    more digits than a process id (:data:`PID_DIGITS`: a timestamp, say) among them.

    >>> _temp_owner(".ck.tmp-123-0badf00d"), _temp_owner(".log.jsonl.tmp-42"), _temp_owner(".a.tmp-20240101123045")
    (('ck', 123), ('log.jsonl', 42), None)
    """
    found = TEMP_NAME.fullmatch(name)
    return (found["name"], int(found["pid"])) if found else None


def _clean_stale(folder: Path, marker: str) -> None:
    """Remove the temporary folders of writers that no longer run, and the backups once ``folder`` holds
    ``marker`` (they are obsolete then). A temporary folder whose name gives no process id is kept."""
    for tmp in _siblings(folder, TMP_TAG):
        owner = _temp_owner(tmp.name)
        if owner and f".{owner[0]}" == sibling_prefix(folder) and owner[1] != os.getpid() and not pid_alive(owner[1]):
            shutil.rmtree(tmp, ignore_errors=True)
    if _holds(folder, marker):
        for old in _siblings(folder, OLD_TAG):
            shutil.rmtree(old, ignore_errors=True)


def _keep_others(folder: Path, tmp: Path) -> None:
    """Put into ``tmp`` what ``folder`` holds that ``tmp`` does not (hard links where the file
    system allows, else copies), so that replacing ``folder`` by ``tmp`` loses nothing but the
    files the new content writes anew."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    for entry in folder.iterdir():
        target = tmp / entry.name
        if target.exists():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=link)
        else:
            link(str(entry), str(target))


def swap_folder(tmp: Path, folder: Path) -> Path | None:
    """Rename ``tmp`` to ``folder``, renaming a ``folder`` already there aside first, as its backup
    ``.NAME.old-XXXXXXXX`` (returned: the backup to remove, or None). An exception between the two renames
    renames the backup back; a process killed there leaves the backup, which :func:`restore_swaps` puts back."""
    old: Path | None = None
    if folder.exists():
        old = folder.parent / f"{sibling_prefix(folder)}{OLD_TAG}{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):  # another writer's folder there: the backup stays for locate
                os.rename(old, folder)
        raise
    _fsync_dir(folder.parent)
    return old


def write_target(folder: Path) -> Path:
    """The folder a write to ``folder`` replaces: a symlink's target (the link stays a link), else ``folder``."""
    try:
        if not folder.is_symlink():
            return folder
    except OSError:  # a name too long, a parent that cannot be looked into: the writer says why
        return folder
    try:
        return folder.resolve()
    except (OSError, RuntimeError) as e:  # a loop of links
        raise CheckpointError(f"cannot write to {folder}: its symlink cannot be followed ({e})") from e


def replace_folder(folder: Path, fill: Callable[[Path], object], *, marker: str) -> None:
    """Write ``folder`` anew, atomically: ``fill(tmp)`` writes the new files (``marker`` among them) into an empty
    temporary folder beside it, which takes the place of ``folder`` once on disk. The files and folders that
    the old ``folder`` (or, after a writer was killed mid-swap, its backup) holds and the new one does not
    write are kept. ``folder`` must not be a symlink (:func:`write_target`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(folder, marker)
    tmp = folder.parent / f"{sibling_prefix(folder)}{TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        for p in tmp.iterdir():
            if p.is_file():
                _fsync_file(p)
        _fsync_dir(tmp)
        previous = folder if folder.exists() else backup_of(folder, marker)
        if previous is not None:
            _keep_others(previous, tmp)
        old = swap_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _clean_stale(folder, marker)  # backups an earlier killed writer left are now obsolete


# --------------------------------------------------------------------------- recovering a whole folder


def _remove(path: Path) -> None:
    """Remove the file or folder ``path`` (a symlink: the link); what cannot be removed stays."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _restore(folder: Path, name: str, backups: list[Path], marker: str) -> list[str]:
    """Rename the newest of ``backups`` (oldest first) that holds ``marker`` back to ``folder / name`` when nothing
    is there, then remove the others once ``name`` holds ``marker``; what was done, in words."""
    target, done = folder / name, []
    if not os.path.lexists(target):
        complete = [b for b in backups if _holds(b, marker)]
        if not complete:
            return []
        try:
            os.rename(complete[-1], target)
        except OSError as e:
            raise CheckpointError(f"{folder}: cannot put {name} back from {complete[-1].name}: "
                                  f"{e.strerror or e}") from e
        _fsync_dir(folder)
        done.append(f"{name} put back from {complete[-1].name}")
        backups = [b for b in backups if b != complete[-1]]
    if backups and _holds(target, marker):
        for old in backups:
            _remove(old)
        done.append(f"removed {', '.join(b.name for b in backups)} (older copies of {name})")
    return done


def restore_swaps(folder: str | os.PathLike[str], *, names: Collection[str] | None = None,
                  marker: str = "config.json") -> list[str]:
    """Undo in ``folder`` what writers killed mid-save left (what was done, in words; [] when nothing was).

    Each name whose entry is missing and that has a backup holding ``marker`` (``.NAME.old-XXXXXXXX``, left by a
    :func:`replace_folder` killed between its two renames) gets its newest such backup back; the other backups
    of a name that holds ``marker`` go (they are obsolete). The temporary folders (``.NAME.tmp-PID-XXXXXXXX``)
    and files (``.NAME.tmp-PID``, :func:`mmtok.core.files.write_atomic`'s) of processes that no longer run are
    removed, and those of this process too: call it before this process writes in ``folder``, while no other
    process may (a training run's lock held), so that a process of the same id in an earlier container is no
    reason to keep them. ``names``: only the entries of those names are looked at (default: all). Only
    ``folder`` itself is looked into, not its subfolders; a backup of a name too long to be spelt in full in
    it (:func:`sibling_prefix` shortened it) is looked at only when ``names`` gives that name or an entry of that
    name is in ``folder``: it is not put back under its shortened name. Backups that do not hold ``marker`` and
    folders of a process still running are left alone."""
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # no folder (yet), or one that cannot be listed
        return []
    spelt = ({sibling_prefix(folder / n)[1:]: n for n in names} if names is not None else
             {sibling_prefix(e)[1:]: e.name for e in entries if sibling_prefix(e) != f".{e.name}"})  # long names
    done: list[str] = []
    backups: dict[str, list[Path]] = {}
    for entry in entries:
        old, tmp = BACKUP_NAME.fullmatch(entry.name), _temp_owner(entry.name)
        if old and (names is None or old["name"] in spelt):
            backups.setdefault(old["name"], []).append(entry)
        elif tmp and (names is None or tmp[0] in spelt) and (tmp[1] == os.getpid() or not pid_alive(tmp[1])):
            _remove(entry)
            done.append(f"removed {entry.name} (left by process {tmp[1]})")
    for short, olds in backups.items():
        name = spelt.get(short) or (None if _shortened(short) else short)
        if name is None or sibling_prefix(folder / name) != f".{short}":  # not the entry's own, or unknown
            continue
        dated: list[tuple[float, Path]] = []
        for b in olds:
            with contextlib.suppress(OSError):
                dated.append((b.stat().st_mtime, b))
        done += _restore(folder, name, [b for _, b in sorted(dated)], marker)
    return done


def _shortened(short: str) -> bool:
    """Whether ``short`` (a hidden name's NAME) may be a name :func:`sibling_prefix` shortened: the start of a longer
    name, ``~`` and its hash, so long that one more character (up to 4 bytes) would leave no room for a tag."""
    return bool(SHORTENED.fullmatch(short)) and len(os.fsencode(f".{short}")) + 4 + TAG_ROOM > NAME_MAX
