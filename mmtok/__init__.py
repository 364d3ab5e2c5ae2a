"""mmtok: multimodal tokenization.

Audio (log-mel slices) and images (patches) become discrete tokens through
learned VQ codebooks; text, image and audio tokens merge into one stream that a
small transformer trains on.

>>> import torch, mmtok
>>> vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=64))
>>> codes = vq.encode(torch.randn(10, 16))
>>> tuple(codes.shape)
(10,)
"""

from __future__ import annotations

from mmtok._version import __version__ as __version__
from mmtok.audio.tokenizer import AudioTokenizer as AudioTokenizer
from mmtok.audio.tokenizer import AudioTokenizerConfig as AudioTokenizerConfig
from mmtok.audio.tokenizer import load_audio as load_audio
from mmtok.context.planner import plan as plan
from mmtok.core.checkpoint import Checkpoint as Checkpoint
from mmtok.core.checkpoint import load_checkpoint as load_checkpoint
from mmtok.core.checkpoint import save_checkpoint as save_checkpoint
from mmtok.core.errors import CheckpointError as CheckpointError
from mmtok.core.errors import MmtokError as MmtokError
from mmtok.core.errors import StreamError as StreamError
from mmtok.data.corpus import TokenizerSpec as TokenizerSpec
from mmtok.data.corpus import tokenize_corpus as tokenize_corpus
from mmtok.data.packing import PackedDataset as PackedDataset
from mmtok.data.shards import open_shards as open_shards
from mmtok.image.tokenizer import ImageTokenizer as ImageTokenizer
from mmtok.image.tokenizer import ImageTokenizerConfig as ImageTokenizerConfig
from mmtok.image.tokenizer import load_image as load_image
from mmtok.pretrained import available as available
from mmtok.pretrained import load as load
from mmtok.pretrained import save as save
from mmtok.stream.interleave import Interleaver as Interleaver
from mmtok.stream.interleave import Stream as Stream
from mmtok.stream.interleave import pretty as pretty
from mmtok.stream.text import BPETokenizer as BPETokenizer
from mmtok.stream.text import ByteTokenizer as ByteTokenizer
from mmtok.stream.vocab import Vocabulary as Vocabulary
from mmtok.video.tokenizer import VideoTokenizer as VideoTokenizer
from mmtok.video.tokenizer import read_video as read_video
from mmtok.vq.quantizer import QuantizeResult as QuantizeResult
from mmtok.vq.quantizer import UsageStats as UsageStats
from mmtok.vq.quantizer import VectorQuantizer as VectorQuantizer
from mmtok.vq.quantizer import VQConfig as VQConfig
from mmtok.vq.quantizer import nearest_code as nearest_code

__all__ = [
    "AudioTokenizer",
    "AudioTokenizerConfig",
    "BPETokenizer",
    "ByteTokenizer",
    "Checkpoint",
    "CheckpointError",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "Interleaver",
    "MmtokError",
    "PackedDataset",
    "QuantizeResult",
    "Stream",
    "StreamError",
    "TokenizerSpec",
    "UsageStats",
    "VQConfig",
    "VectorQuantizer",
    "VideoTokenizer",
    "Vocabulary",
    "__version__",
    "available",
    "load",
    "load_audio",
    "load_checkpoint",
    "load_image",
    "nearest_code",
    "open_shards",
    "plan",
    "pretty",
    "read_video",
    "save",
    "save_checkpoint",
    "tokenize_corpus",
]
