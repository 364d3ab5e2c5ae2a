"""A shard's ids on disk: the dtype they are stored in, and reading them from its ``.bin`` a slice at a time.

Memory-mapping every shard holds one file open per shard, which fails past the
process's limit (``ulimit -n``, often 1,024) on a large corpus. A
:class:`ShardFile` holds no file open: indexed, it opens its file, reads the
ids asked for with one ``pread`` (a training window: a few KiB) and closes it.

>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "shard-00000.bin"
>>> np.arange(10, 20, dtype=np.uint16).tofile(p)
>>> f = ShardFile(p, np.dtype(np.uint16), 10)
>>> f[2:5].tolist(), int(f[-1]), f.nbytes, int(np.asarray(f).sum())
([12, 13, 14], 19, 20, 145)
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any, overload

import numpy as np

from mmtok.core.errors import CorpusError

__all__ = ["ShardFile", "id_dtype"]

MAX_READ = 1 << 30  # bytes asked of one pread (Linux returns at most ~2 GiB at a time)


def id_dtype(vocab_size: int) -> np.dtype:
    """How ids of a vocabulary of ``vocab_size`` are stored: uint16 when they fit, else uint32.

    >>> id_dtype(256 + 11).name, id_dtype(1 << 16).name, id_dtype((1 << 16) + 1).name
    ('uint16', 'uint16', 'uint32')
    """
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class ShardFile:
    """The ``size`` ids of dtype ``dtype`` in the file ``path`` (as its index lists them), read when indexed.

    ``f[a:b]`` and ``f[k]`` read those ids, ``np.asarray(f)`` and any other index
    all of them; what comes back is a new read-only array. The file is read as it
    is then: one changed since its ids were checked is not noticed unless it got
    shorter.
    """

    __slots__ = ("_name", "dtype", "path", "size")

    def __init__(self, path: Path, dtype: np.dtype, size: int) -> None:
        self.path, self.dtype, self.size = Path(path), np.dtype(dtype), int(size)
        self._name = os.fsencode(self.path)  # what os.open takes fastest

    @property
    def shape(self) -> tuple[int]:
        return (self.size,)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, key: slice) -> np.ndarray: ...

    @overload
    def __getitem__(self, key: int | np.integer[Any]) -> np.integer[Any]: ...

    @overload
    def __getitem__(self, key: Any) -> Any: ...

    def __getitem__(self, key: Any) -> Any:
        """``f[a:b]``: those ids (an array); ``f[k]``: one id (a numpy integer); any other index: as numpy
        indexes all of them."""
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step == 1:
                return self.read(start, stop)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            k = operator.index(key)
            if not -self.size <= k < self.size:
                raise IndexError(f"index {k} is out of range for the {self.size} ids of {self.path}")
            k %= self.size
            return self.read(k, k + 1)[0]
        return self.read(0, self.size)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        ids = self.read(0, self.size)
        return ids if dtype is None else ids.astype(dtype, copy=False)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Ids ``[start, stop)`` (``0 <= start``, ``stop <= size``): the file opened, read and closed."""
        item = self.dtype.itemsize
        nbytes = (stop - start) * item
        if nbytes <= 0:
            return np.zeros(0, self.dtype)
        try:
            fd = os.open(self._name, os.O_RDONLY)
            try:
                data = os.pread(fd, nbytes, start * item) if nbytes <= MAX_READ else _pread_all(fd, nbytes, start * item)
            finally:
                os.close(fd)
        except OSError as e:
            raise CorpusError(f"{self.path} cannot be read ({e.strerror or type(e).__name__}): open the shards "
                              "again, or tokenize the corpus again") from None
        if len(data) < nbytes:
            raise CorpusError(f"{self.path} is shorter than the {self.size} ids its index lists: it changed since "
                              "its shards were opened; open them again, or tokenize the corpus again")
        return np.frombuffer(data, self.dtype)  # bytes: read-only, as a memory map opened for reading

    def __repr__(self) -> str:
        return f"ShardFile({str(self.path)!r}, {self.dtype.name}, {self.size} ids)"


def _pread_all(fd: int, nbytes: int, offset: int) -> bytes:
    """``nbytes`` bytes at ``offset`` (fewer at the file's end), read :data:`MAX_READ` bytes at a time."""
    parts, got = [], 0
    while got < nbytes:
        part = os.pread(fd, min(MAX_READ, nbytes - got), offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
