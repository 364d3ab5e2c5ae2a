"""``mmtok demo``: show what works, on data it makes itself, with measured figures.

Today it trains the VQ codebook on a generated dataset (a mixture of tight
Gaussian clusters, the case where naive codebooks collapse), compares it with a
randomly initialised codebook, and reports codebook usage, perplexity,
quantization error and search speed. It writes ``summary.json`` (and a usage
histogram PNG when matplotlib is installed) into the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mmtok.quantize import VectorQuantizer, VQConfig
from mmtok.trainstate import pick_device

__all__ = ["make_clustered", "run_demo"]


def make_clustered(
    n: int, dim: int, n_clusters: int, *, spread: float = 0.1, seed: int = 0
) -> torch.Tensor:
    """``[n, dim]`` vectors from ``n_clusters`` tight Gaussian clusters away from the origin."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=g) + 2.0
    which = torch.randint(0, n_clusters, (n,), generator=g)
    return centers[which] + spread * torch.randn(n, dim, generator=g)


def _usage_png(counts: dict[str, torch.Tensor], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    for name, c in counts.items():
        ax.plot(torch.sort(c.float(), descending=True).values.numpy(), label=name)
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("held-out vectors")
    ax.set_yscale("symlog")
    ax.set_title("codebook usage on held-out vectors")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def run_demo(
    out: str | Path = "mmtok-demo", *, fast: bool = False, seed: int = 0, device: str | None = None
) -> dict[str, Any]:
    """Run the demo, print a one-line summary per step, and return the figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(seed)
    dim, k = 64, (256 if fast else 1024)
    n_train, n_test = (50_000, 20_000) if fast else (400_000, 100_000)
    steps, batch = (40, 4096) if fast else (150, 8192)
    data = make_clustered(n_train + n_test, dim, 4 * k, seed=seed).to(dev)
    train, test = data[:n_train], data[n_train:]
    print(f"data: {n_train:,} training and {n_test:,} held-out vectors, dim {dim}, {4 * k} clusters")

    results: dict[str, Any] = {"device": str(dev), "dim": dim, "codebook_size": k}
    counts = {}
    variants = {
        "mmtok (k-means init + EMA + dead-code restart)": VQConfig(dim=dim, codebook_size=k),
        "random init, plain EMA": VQConfig(
            dim=dim, codebook_size=k, kmeans_init=False, dead_code_threshold=0.0
        ),
    }
    g = torch.Generator().manual_seed(seed)
    for name, cfg in variants.items():
        vq = VectorQuantizer(cfg).to(dev).train()
        t0 = time.perf_counter()
        for _ in tqdm(range(steps), desc=f"train {name.split(' ')[0]}", leave=False):
            vq(train[torch.randint(0, n_train, (batch,), generator=g).to(dev)])
        train_s = time.perf_counter() - t0
        vq.eval().reset_stats()
        t0 = time.perf_counter()
        idx = vq.encode(test)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        enc_s = time.perf_counter() - t0
        stats = vq.usage_stats()
        mse = float((vq.decode(idx) - test).pow(2).mean())
        row = {
            "usage": round(stats.usage, 4),
            "perplexity": round(stats.perplexity, 1),
            "mse": round(mse, 5),
            "train_s": round(train_s, 2),
            "encode_vectors_per_s": round(n_test / enc_s),
        }
        results[name] = row
        counts[name] = stats.counts
        print(
            f"{name}: usage {row['usage']:.1%}, perplexity {row['perplexity']:.0f} of {k}, "
            f"held-out MSE {mse:.4f}, train {train_s:.1f} s, encode {row['encode_vectors_per_s']:,} vectors/s"
        )
    if _usage_png(counts, out / "codebook_usage.png"):
        results["usage_plot"] = str(out / "codebook_usage.png")
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'summary.json'}")
    return results
