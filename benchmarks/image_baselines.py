"""The peers ``benchmarks/image.py`` measures the image tokenizer against.

- :class:`KMeansPatches`: a codebook of raw RGB patches (one code per
  tokenizer patch, same K), fitted by scikit-learn's k-means; encode is the
  nearest patch, decode pastes the centres back. :func:`fit_kmeans_cached`
  fits it once per set of inputs and keeps the centres in a file whose name
  is a hash of everything the fit depends on.
- :func:`vqgan_f16`: the taming VQGAN f16 architecture (diffusers ``VQModel``,
  random weights: its speed does not depend on them) and
  :func:`vqgan_tokenize`, its encoder *and* quantizer, image -> code grid.

>>> import torch
>>> km = KMeansPatches(4, seed=0, patch=8).fit(KMeansPatches.patches(torch.rand(2, 3, 16, 16), 8), 0)
>>> tuple(km.encode(torch.rand(1, 3, 16, 16)).shape)
(1, 2, 2)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.image.sizing import patchify, unpatchify
from mmtok.vq.search import nearest_code

__all__ = ["KMeansPatches", "fit_kmeans_cached", "vqgan_detokenize", "vqgan_f16", "vqgan_tokenize"]

MINIBATCH = 4096  # mini-batch k-means batch size
MINIBATCH_INITS = 3  # mini-batch k-means restarts (best kept)
MINIBATCH_EPOCHS = 50  # at most this many passes over the patches


class KMeansPatches:
    """A codebook of raw ``patch×patch`` RGB patches (``3·patch²``-d), nearest-patch encode/decode."""

    def __init__(self, k: int, *, seed: int, patch: int = 16) -> None:
        self.k, self.seed, self.patch = k, seed, patch
        self.centers = torch.empty(0)

    @staticmethod
    def patches(images: torch.Tensor, patch: int = 16) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B*h*w, 3*patch*patch]`` raw patch vectors."""
        return patchify(images, patch).reshape(-1, 3 * patch * patch)

    def fit(self, patches: torch.Tensor, polish_iters: int) -> KMeansPatches:
        """Mini-batch k-means, then ``polish_iters`` full Lloyd iterations from its solution."""
        from sklearn.cluster import KMeans, MiniBatchKMeans

        x = patches.numpy().astype(np.float32)  # (N, 3*p*p)
        if x.shape[0] < self.k:
            raise ValueError(f"k-means with K={self.k} needs at least K patches, got {x.shape[0]}")
        centers = MiniBatchKMeans(
            n_clusters=self.k, batch_size=MINIBATCH, n_init=MINIBATCH_INITS, max_iter=MINIBATCH_EPOCHS,
            random_state=self.seed,
        ).fit(x).cluster_centers_
        if polish_iters:
            centers = KMeans(
                n_clusters=self.k, init=centers, n_init=1, max_iter=polish_iters, random_state=self.seed
            ).fit(x).cluster_centers_
        self.centers = torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32))
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> codes ``[B, H/patch, W/patch]``."""
        b, _, h, w = images.shape
        p = self.patches(images, self.patch)  # (B*h*w, 3*p*p)
        return nearest_code(p.float(), self.centers).reshape(b, h // self.patch, w // self.patch)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, h, w]`` -> ``[B, 3, h*patch, w*patch]`` in [0, 1]."""
        b, h, w = codes.shape
        return unpatchify(self.centers[codes.reshape(b, h * w)], self.patch, h, w).clamp(0, 1)


def fit_kmeans_cached(
    key: Mapping[str, Any], folder: Path, patches: Callable[[], torch.Tensor], *, threads: int | None = None
) -> tuple[KMeansPatches, float, int]:
    """The k-means baseline for ``key`` (``k``, ``seed``, ``patch``, ``polish`` and the data it saw).

    The centres live in ``folder/kmeans-K{k}-{hash of key}.pt``: a second run with
    the same key reads them instead of fitting (``patches`` is then never
    called). Returns the codebook, the fit's seconds and its number of patches.
    """
    blob = json.dumps(dict(key), sort_keys=True, default=str)
    path = Path(folder) / f"kmeans-K{key['k']}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"
    km = KMeansPatches(int(key["k"]), seed=int(key["seed"]), patch=int(key["patch"]))
    if path.is_file():
        saved = torch.load(path)
        if saved.get("key") == blob:
            km.centers = saved["centers"]
            return km, float(saved["fit_seconds"]), int(saved["patches"])
    x = patches()
    t0 = time.perf_counter()
    if threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            km.fit(x, int(key["polish"]))
    else:
        km.fit(x, int(key["polish"]))
    seconds = time.perf_counter() - t0
    tmp = path.with_suffix(".tmp")
    torch.save({"key": blob, "centers": km.centers, "fit_seconds": seconds, "patches": int(x.shape[0])}, tmp)
    tmp.replace(path)
    return km, seconds, int(x.shape[0])


def vqgan_f16(codes: int = 16384) -> torch.nn.Module:
    """The taming VQGAN f16 (256×256 -> 16×16 codes of ``codes`` entries, 256-d), random init, eval mode."""
    from diffusers import VQModel

    torch.manual_seed(0)
    return VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 5,
        up_block_types=("UpDecoderBlock2D",) * 5,
        block_out_channels=(128, 128, 256, 256, 512),
        layers_per_block=2,
        latent_channels=256,
        num_vq_embeddings=codes,
        vq_embed_dim=256,
        sample_size=256,
    ).eval()


def vqgan_tokenize(vqgan: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Images ``[B, 3, H, W]`` in [0, 1] -> codes ``[B, H/16, W/16]``: encoder, ``quant_conv`` and quantizer."""
    h = vqgan.encode(x * 2.0 - 1.0).latents  # (B, 256, H/16, W/16)
    _, _, (_, _, idx) = vqgan.quantize(h)  # idx (B*h*w,) nearest of the num_vq_embeddings codes
    return idx.reshape(h.shape[0], h.shape[2], h.shape[3])


def vqgan_detokenize(vqgan: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """Codes ``[B, h, w]`` -> images ``[B, 3, 16h, 16w]`` in [0, 1]: the code vectors, ``post_quant_conv`` and
    the decoder (the inverse path of :func:`vqgan_tokenize`)."""
    z = vqgan.quantize.embedding(codes).permute(0, 3, 1, 2)  # (B, 256, h, w)
    return (vqgan.decode(z, force_not_quantize=True).sample.clamp(-1.0, 1.0) + 1.0) / 2.0

