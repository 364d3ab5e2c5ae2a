"""Data: a corpus -> token shards on disk -> packed training windows, and exports.

:mod:`~mmtok.data.documents` reads documents (JSONL, or the OBELICS layout in
parquet or a ``datasets`` folder); :mod:`~mmtok.data.corpus` tokenizes them into
shards (atomic, resumable, byte-identical for any number of workers and either
engine; what makes two runs the same run in :mod:`~mmtok.data.run_key`, files hashed by
:mod:`~mmtok.data.digest`); :mod:`~mmtok.data.ray_engine` is the Ray Data engine
(:class:`TokenizeDocuments` is its ``map_batches`` callable; Ray is imported only
when it runs); :mod:`~mmtok.data.shards` is the shard format (:mod:`~mmtok.data.shard_checks`
reads its JSON and checks every index against its manifest; :mod:`~mmtok.data.shard_ids` reads
a shard's ids without holding the file open, and picks their dtype);
:mod:`~mmtok.data.packing` cuts shards into windows; :mod:`~mmtok.data.export`
writes shards as parquet, a ``datasets`` folder or a flat ``tokens.bin``;
:mod:`~mmtok.data.outdir` claims a run's output folder (lock, ``--restart``,
cleanup, the corpus-content check on resume); :mod:`~mmtok.data.codes` is the
code-file format of ``mmtok encode``; :mod:`~mmtok.data.media_files` finds the media
files a command names and reports each that fails on its own line.

Imports: :mod:`mmtok.core`, :mod:`mmtok.stream` and :mod:`mmtok.pretrained`
(to build tokenizers from names).
"""

from __future__ import annotations

from mmtok.data.corpus import tokenize_corpus as tokenize_corpus
from mmtok.data.packing import PackedDataset as PackedDataset
from mmtok.data.ray_engine import RayEngine as RayEngine
from mmtok.data.ray_engine import TokenizeDocuments as TokenizeDocuments
from mmtok.data.shards import open_shards as open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec as TokenizerSpec

__all__ = ['PackedDataset', 'RayEngine', 'TokenizeDocuments', 'TokenizerSpec', 'open_shards', 'tokenize_corpus']
