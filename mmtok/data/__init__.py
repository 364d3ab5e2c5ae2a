"""Data: a JSONL corpus -> token shards on disk -> packed training windows.

:mod:`~mmtok.data.corpus` tokenizes documents into shards (atomic,
resumable, byte-identical for any number of workers); :mod:`~mmtok.data.shards`
is the shard format; :mod:`~mmtok.data.packing` cuts shards into windows.

Imports: :mod:`mmtok.core`, :mod:`mmtok.stream` and :mod:`mmtok.pretrained`
(to build tokenizers from names).
"""

from __future__ import annotations

from mmtok.data.corpus import TokenizerSpec as TokenizerSpec
from mmtok.data.corpus import tokenize_corpus as tokenize_corpus
from mmtok.data.packing import PackedDataset as PackedDataset
from mmtok.data.shards import open_shards as open_shards

__all__ = ['PackedDataset', 'TokenizerSpec', 'open_shards', 'tokenize_corpus']
