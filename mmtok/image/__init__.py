"""Images: file -> float ``[3, H, W]`` -> patch codes ``[h, w]`` -> image.

:mod:`~mmtok.image.io` reads files in every Pillow mode; :mod:`~mmtok.image.sizing`
applies the size policies and cuts patches (:mod:`~mmtok.image.resample` resizes only
the kept part of a very long image); :mod:`~mmtok.image.model` holds the convolutional
encoder and decoder; :mod:`~mmtok.image.tokenizer` composes them with a VQ codebook (its settings in
:mod:`~mmtok.image.config`);
:mod:`~mmtok.image.train` is ``mmtok train-tokenizer image``, which starts from the data
or another tokenizer through :mod:`~mmtok.image.init` and cuts its crops with
:mod:`~mmtok.image.crops`.

Imports: :mod:`mmtok.core`, :mod:`mmtok.vq`, :mod:`mmtok.synth` (the trainer's
synthetic pictures). Never :mod:`mmtok.audio` or anything above the media layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmtok.core.lazy import lazy_members

if TYPE_CHECKING:
    from mmtok.image.config import ImageTokenizerConfig as ImageTokenizerConfig
    from mmtok.image.io import load_image as load_image
    from mmtok.image.tokenizer import ImageTokenizer as ImageTokenizer

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "load_image": "mmtok.image.io",
    "ImageTokenizer": "mmtok.image.tokenizer",
    "ImageTokenizerConfig": "mmtok.image.config",
}


__getattr__, __dir__ = lazy_members(__name__, _HOMES, globals())


__all__ = ['ImageTokenizer', 'ImageTokenizerConfig', 'load_image']
