"""Streams: text tokenizers, the unified vocabulary, the interleaver and its parser.

:mod:`~mmtok.stream.text` (one base class; bytes and BPE),
:mod:`~mmtok.stream.vocab` (the id space, built in one place with a
fingerprint), :mod:`~mmtok.stream.normalize` (a document's segments as text and
checked codes), :mod:`~mmtok.stream.interleave` (documents -> one stream of ids
with positions and loss weights) and :mod:`~mmtok.stream.parse` (its exact
inverse, with repairs; an image's or a video's grid read by
:mod:`~mmtok.stream.grids` and mended by :mod:`~mmtok.stream.mend`). Media tokenizers are used through the
:class:`~mmtok.core.protocol.MediaTokenizer` protocol, never imported.

Imports: :mod:`mmtok.core` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmtok.core.lazy import lazy_members

if TYPE_CHECKING:
    from mmtok.stream.interleave import Interleaver as Interleaver
    from mmtok.stream.interleave import Stream as Stream
    from mmtok.stream.interleave import pretty as pretty
    from mmtok.stream.vocab import Vocabulary as Vocabulary

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "Interleaver": "mmtok.stream.interleave",
    "Stream": "mmtok.stream.interleave",
    "pretty": "mmtok.stream.interleave",
    "Vocabulary": "mmtok.stream.vocab",
}


__getattr__, __dir__ = lazy_members(__name__, _HOMES, globals())


__all__ = ['Interleaver', 'Stream', 'Vocabulary', 'pretty']
