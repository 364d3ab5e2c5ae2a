"""mmtok: multimodal tokenization.

Audio (log-mel slices) and images (patches) become discrete tokens through
learned VQ codebooks; text, image and audio tokens merge into one stream that a
small transformer trains on.

>>> import torch, mmtok
>>> vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=64))
>>> codes = vq.encode(torch.randn(10, 16))
>>> tuple(codes.shape)
(10,)

The names below are the public API. Everything else is reachable through the
subpackages, one per stage of the data flow: :mod:`mmtok.vq`,
:mod:`mmtok.image`, :mod:`mmtok.audio`, :mod:`mmtok.video`, :mod:`mmtok.stream`,
:mod:`mmtok.data`, :mod:`mmtok.lm`, :mod:`mmtok.context`, with shared support in
:mod:`mmtok.core`.
"""

from typing import TYPE_CHECKING

from mmtok._version import __version__ as __version__

if TYPE_CHECKING:
    from mmtok.audio.config import AudioTokenizerConfig as AudioTokenizerConfig
    from mmtok.audio.io import load_audio as load_audio
    from mmtok.audio.tokenizer import AudioTokenizer as AudioTokenizer
    from mmtok.context.shipped import plan as plan
    from mmtok.core.errors import AudioError as AudioError
    from mmtok.core.errors import CheckpointError as CheckpointError
    from mmtok.core.errors import CorpusError as CorpusError
    from mmtok.core.errors import DocumentError as DocumentError
    from mmtok.core.errors import ImageError as ImageError
    from mmtok.core.errors import MmtokError as MmtokError
    from mmtok.core.errors import QuantizerError as QuantizerError
    from mmtok.core.errors import StreamError as StreamError
    from mmtok.core.errors import TrainingError as TrainingError
    from mmtok.core.errors import VideoError as VideoError
    from mmtok.core.errors import VocabularyError as VocabularyError
    from mmtok.core.protocol import MediaTokenizer as MediaTokenizer
    from mmtok.data.corpus import tokenize_corpus as tokenize_corpus
    from mmtok.data.packing import PackedDataset as PackedDataset
    from mmtok.data.shards import open_shards as open_shards
    from mmtok.data.tokenizer_spec import TokenizerSpec as TokenizerSpec
    from mmtok.image.config import ImageTokenizerConfig as ImageTokenizerConfig
    from mmtok.image.io import load_image as load_image
    from mmtok.image.tokenizer import ImageTokenizer as ImageTokenizer
    from mmtok.lm.runs import load_run as load_run
    from mmtok.lm.sample import generate as generate
    from mmtok.pretrained import load as load
    from mmtok.pretrained import save as save
    from mmtok.stream.interleave import Interleaver as Interleaver
    from mmtok.stream.interleave import Stream as Stream
    from mmtok.stream.interleave import pretty as pretty
    from mmtok.stream.text import BPETokenizer as BPETokenizer
    from mmtok.stream.text import ByteTokenizer as ByteTokenizer
    from mmtok.stream.vocab import Vocabulary as Vocabulary
    from mmtok.video.read import read_video as read_video
    from mmtok.video.tokenizer import VideoTokenizer as VideoTokenizer
    from mmtok.vq.config import VQConfig as VQConfig
    from mmtok.vq.quantizer import VectorQuantizer as VectorQuantizer

# where each public name lives: imported on first use (PEP 562), so ``import mmtok`` (and the ``mmtok`` command's
# start, which must answer Ctrl-C) does not wait for torch
_HOMES = {
    "AudioTokenizerConfig": "mmtok.audio.config",
    "load_audio": "mmtok.audio.io",
    "AudioTokenizer": "mmtok.audio.tokenizer",
    "plan": "mmtok.context.shipped",
    "AudioError": "mmtok.core.errors",
    "CheckpointError": "mmtok.core.errors",
    "CorpusError": "mmtok.core.errors",
    "DocumentError": "mmtok.core.errors",
    "ImageError": "mmtok.core.errors",
    "MmtokError": "mmtok.core.errors",
    "QuantizerError": "mmtok.core.errors",
    "StreamError": "mmtok.core.errors",
    "TrainingError": "mmtok.core.errors",
    "VideoError": "mmtok.core.errors",
    "VocabularyError": "mmtok.core.errors",
    "MediaTokenizer": "mmtok.core.protocol",
    "TokenizerSpec": "mmtok.data.tokenizer_spec",
    "tokenize_corpus": "mmtok.data.corpus",
    "PackedDataset": "mmtok.data.packing",
    "open_shards": "mmtok.data.shards",
    "load_image": "mmtok.image.io",
    "ImageTokenizer": "mmtok.image.tokenizer",
    "ImageTokenizerConfig": "mmtok.image.config",
    "load_run": "mmtok.lm.runs",
    "generate": "mmtok.lm.sample",
    "load": "mmtok.pretrained",
    "save": "mmtok.pretrained",
    "Interleaver": "mmtok.stream.interleave",
    "Stream": "mmtok.stream.interleave",
    "pretty": "mmtok.stream.interleave",
    "BPETokenizer": "mmtok.stream.text",
    "ByteTokenizer": "mmtok.stream.text",
    "Vocabulary": "mmtok.stream.vocab",
    "read_video": "mmtok.video.read",
    "VideoTokenizer": "mmtok.video.tokenizer",
    "VectorQuantizer": "mmtok.vq.quantizer",
    "VQConfig": "mmtok.vq.config",
}


def __getattr__(name: str) -> object:
    """A public name (or a subpackage, ``mmtok.audio``) imported on first use and kept."""
    import importlib.util

    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AudioError",
    "AudioTokenizer",
    "AudioTokenizerConfig",
    "BPETokenizer",
    "ByteTokenizer",
    "CheckpointError",
    "CorpusError",
    "DocumentError",
    "ImageError",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "Interleaver",
    "MediaTokenizer",
    "MmtokError",
    "PackedDataset",
    "QuantizerError",
    "Stream",
    "StreamError",
    "TokenizerSpec",
    "TrainingError",
    "VQConfig",
    "VectorQuantizer",
    "VideoError",
    "VideoTokenizer",
    "Vocabulary",
    "VocabularyError",
    "__version__",
    "generate",
    "load",
    "load_audio",
    "load_image",
    "load_run",
    "open_shards",
    "plan",
    "pretty",
    "read_video",
    "save",
    "tokenize_corpus",
]
