"""The tables of an OBELICS-layout corpus: which files a ``datasets`` folder's rows are in, and its ``texts`` and
``images`` columns read in record batches, their types checked before any row is.

A column is a list of strings (``texts``) or of paths, image bytes or ``{"bytes", "path"}`` structs
(``images``, as ``datasets.Image`` stores them), or a column of only nulls; anything else is a
:class:`~mmtok.core.errors.CorpusError` naming the file and the column. Needs ``pyarrow``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError

__all__ = ["CELL_TYPES", "OBELICS_COLUMNS", "ROW_BATCH", "check_columns", "data_files", "table_batches"]

ROW_BATCH = 256  # rows read from a table at a time
OBELICS_COLUMNS = ("texts", "images")  # the list columns an OBELICS-layout table has


def data_files(folder: Path) -> list[Path]:
    """The ``.arrow`` files a ``datasets`` folder's ``state.json`` lists under ``_data_files``, in its order.

    Not every ``.arrow`` file in the folder: ``.map()`` and ``.filter()`` write
    ``cache-*.arrow`` files there, which hold other rows.
    """
    state = folder / "state.json"
    try:
        listed = json.loads(state.read_text(encoding="utf-8"))["_data_files"]
        names = [entry["filename"] for entry in listed]
    except (OSError, ValueError, LookupError, TypeError) as e:
        raise CorpusError(f"{state} does not list the dataset's files (_data_files: [{{\"filename\": ...}}]): "
                          f"{type(e).__name__}: {e}; save the dataset again with Dataset.save_to_disk") from None
    files = []
    for name in names:
        plain = isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name  # no ../
        if not plain or not (folder / name).is_file():
            raise CorpusError(f"{state} lists the data file {name!r}, which is not a file in {folder}")
        files.append(folder / name)
    return files


def table_batches(path: Path, layout: str) -> Iterator[Any]:
    """Record batches of ``path`` (a Parquet file or an Arrow stream), only the OBELICS columns."""
    import pyarrow.parquet as pq
    from pyarrow import ipc

    if layout == "parquet":
        table = pq.ParquetFile(path)
        check_columns(path, table.schema_arrow)
        yield from table.iter_batches(batch_size=ROW_BATCH, columns=list(OBELICS_COLUMNS))
        return
    with open(path, "rb") as f:
        reader = ipc.open_stream(f)
        check_columns(path, reader.schema)
        for batch in reader:
            yield batch.select(list(OBELICS_COLUMNS))


def check_columns(path: Path, schema: Any) -> None:
    """A :class:`CorpusError` naming ``path`` unless its table has one list column ``texts`` and one ``images``."""
    import pyarrow as pa

    for name in OBELICS_COLUMNS:
        index = schema.get_field_index(name)
        if index < 0:
            raise CorpusError(f"{path} has no (single) {name!r} column (its columns: {', '.join(schema.names)}); "
                              "an OBELICS-layout corpus has list columns texts and images")
        kind = schema.field(index).type
        if not any(test(kind) for test in (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list,
                                           pa.types.is_null)):
            raise CorpusError(f"{path}: column {name!r} holds {kind}, not lists; an OBELICS-layout corpus has "
                              "list columns texts and images")
        item = None if pa.types.is_null(kind) else kind.value_type
        if item is not None and not _cell_type_ok(name, item):
            raise CorpusError(f"{path}: column {name!r} holds lists of {item}, not of {CELL_TYPES[name]}; cast the "
                              "column (e.g. pyarrow.compute.cast) or write the corpus again with those types")


CELL_TYPES = {"texts": "strings", "images": "paths (strings), image bytes or {bytes, path} structs"}


def _cell_type_ok(name: str, item: Any) -> bool:
    """Whether list items of the Arrow type ``item`` can be cells of the OBELICS column ``name``
    (:data:`CELL_TYPES`); a column of only nulls (type null) always can."""
    import pyarrow as pa

    if pa.types.is_dictionary(item):
        item = item.value_type
    strings = pa.types.is_string(item) or pa.types.is_large_string(item) or pa.types.is_null(item)
    if name == "texts":
        return strings
    if pa.types.is_struct(item):  # datasets.Image stores {"bytes": binary, "path": string}
        return any(item.get_field_index(key) >= 0 for key in ("bytes", "path"))
    return strings or pa.types.is_binary(item) or pa.types.is_large_binary(item)
