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

__version__ = "0.1.0"

from mmtok.audio import AudioTokenizer as AudioTokenizer
from mmtok.audio import AudioTokenizerConfig as AudioTokenizerConfig
from mmtok.audio import load_audio as load_audio
from mmtok.checkpoint import Checkpoint as Checkpoint
from mmtok.checkpoint import load_checkpoint as load_checkpoint
from mmtok.checkpoint import save_checkpoint as save_checkpoint
from mmtok.context import plan as plan
from mmtok.data import TokenizerSpec as TokenizerSpec
from mmtok.data import tokenize_corpus as tokenize_corpus
from mmtok.errors import CheckpointError as CheckpointError
from mmtok.errors import MmtokError as MmtokError
from mmtok.errors import StreamError as StreamError
from mmtok.image import ImageTokenizer as ImageTokenizer
from mmtok.image import ImageTokenizerConfig as ImageTokenizerConfig
from mmtok.image import load_image as load_image
from mmtok.interleave import Interleaver as Interleaver
from mmtok.interleave import Stream as Stream
from mmtok.interleave import pretty as pretty
from mmtok.packing import PackedDataset as PackedDataset
from mmtok.pretrained import available as available
from mmtok.pretrained import load as load
from mmtok.pretrained import save as save
from mmtok.quantize import QuantizeResult as QuantizeResult
from mmtok.quantize import UsageStats as UsageStats
from mmtok.quantize import VectorQuantizer as VectorQuantizer
from mmtok.quantize import VQConfig as VQConfig
from mmtok.quantize import nearest_code as nearest_code
from mmtok.shards import open_shards as open_shards
from mmtok.text import BPETokenizer as BPETokenizer
from mmtok.text import ByteTokenizer as ByteTokenizer
from mmtok.video import VideoTokenizer as VideoTokenizer
from mmtok.video import read_video as read_video
from mmtok.vocab import Vocabulary as Vocabulary

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
