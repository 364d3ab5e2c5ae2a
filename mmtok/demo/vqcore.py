"""Demo step: the VQ core on clustered data, next to a naive codebook (usage, perplexity, error, speed)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from mmtok.demo.plots import usage_plot
from mmtok.synth.clustered import make_clustered
from mmtok.vq.config import VQConfig
from mmtok.vq.quantizer import VectorQuantizer

if TYPE_CHECKING:
    from mmtok.demo.state import Demo


VARIANTS = {
    "mmtok (k-means init, EMA, dead-code restart)": {},
    "naive (random init, plain EMA)": {"kmeans_init": False, "dead_code_threshold": 0.0},
}


def vq_step(d: Demo) -> str:
    dim, k = 64, (256 if d.fast else 1024)
    n_train, n_test = (40_000, 20_000) if d.fast else (300_000, 100_000)
    steps, batch = (30, 4096) if d.fast else (120, 8192)
    data = make_clustered(n_train + n_test, dim, 4 * k, seed=d.seed).to(d.device)
    train, test = data[:n_train], data[n_train:]
    g = torch.Generator().manual_seed(d.seed)
    torch.manual_seed(d.seed)  # the codebooks' initial draws: the same whatever the steps before drew
    rows, counts = [], {}
    for name, extra in VARIANTS.items():
        vq = VectorQuantizer(VQConfig(dim=dim, codebook_size=k, **extra)).to(d.device).train()
        t0 = time.perf_counter()
        for _ in tqdm(range(steps), desc=f"VQ {name.split(' ')[0]}", leave=False, disable=not d.progress):
            vq(train[torch.randint(0, n_train, (batch,), generator=g).to(d.device)])
        train_s = time.perf_counter() - t0
        vq.eval()
        vq.encode(test[:1024])  # not timed: the first call builds the twin table and, on a GPU, loads its kernels
        if d.device.type == "cuda":
            torch.cuda.synchronize(d.device)
        vq.reset_stats()
        t0 = time.perf_counter()
        idx = vq.encode(test)
        if d.device.type == "cuda":
            torch.cuda.synchronize(d.device)
        enc_s = time.perf_counter() - t0
        stats = vq.usage_stats()
        mse = float((vq.decode(idx) - test).pow(2).mean())
        rows.append([name, round(stats.usage, 4), round(stats.perplexity, 1), round(mse, 5), round(n_test / enc_s),
                     round(train_s, 2)])
        counts[name] = stats.counts
    ours, naive = rows
    d.figure("vq_usage", ours[1], "fraction", f"VQ core: codebook usage on held-out vectors (K={k})")
    d.figure("vq_usage_naive", naive[1], "fraction", "VQ core: usage of the naive codebook")
    d.figure("vq_encode_vectors_per_s", ours[4], "vectors/s", f"VQ core: nearest-code search, dim {dim}, K={k}")
    usage_plot(d.out / "vq_usage.png", counts, title="VQ core: codes sorted by use on held-out vectors",
               ylabel="held-out vectors")
    d.report.section(
        "1. The VQ core",
        d.report.text(f"{n_train:,} training and {n_test:,} held-out vectors from {4 * k:,} tight clusters "
                      f"(dim {dim}): the case where a naive codebook collapses. Codebook of {k} codes, "
                      f"{steps} training batches of {batch:,}."),
        d.report.table(["codebook", "usage", "perplexity", "held-out MSE", "encode vectors/s", "train s"], rows),
        d.report.grid([d.report.image("vq_usage.png", "held-out vectors per code, sorted", width=560)]),
    )
    return (f"usage {ours[1]:.1%} vs naive {naive[1]:.1%}, held-out MSE {ours[3]:.4f} vs {naive[3]:.4f}, "
            f"search {ours[4]:,} vectors/s")
