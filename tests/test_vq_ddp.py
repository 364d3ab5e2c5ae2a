"""The EMA counts under torch.distributed: vectors per step of one rank, the same scale as one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmtok.vq.quantizer import VectorQuantizer, VQConfig

BATCH = 512  # vectors per step on every rank


def ema_totals(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=32, decay=0.8, dead_code_threshold=0.0)).train()
    totals = []
    for _ in range(20):
        vq(torch.randn(BATCH, 4))
        totals.append(float(vq.ema_count.sum()))
    vq(torch.randn(BATCH if rank == 0 else 0, 4))  # rank 1 has no data this step: rank 0's still counts
    uneven = float(vq.ema_count.sum())
    vq.ema_count.zero_()
    vq.rebalance(torch.randn(300 + 100 * rank, 4), iters=2)  # no EMA count to keep: this data, per rank
    torch.save({"totals": totals, "uneven": uneven, "rebalanced": float(vq.ema_count.sum())},
               Path(out_dir) / f"rank{rank}.pt")
    if world > 1:
        dist.destroy_process_group()


def test_ema_counts_keep_the_scale_of_one_ranks_step_under_ddp(tmp_path: Path) -> None:
    mp.spawn(ema_totals, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["totals"] == r1["totals"]
    # k-means sets the counts per rank (512); every EMA step after adds the same scale: no drift toward 1024
    for total in r0["totals"]:
        assert abs(total - BATCH) < 1e-2 * BATCH, r0["totals"]
    # one rank's 512 vectors are 256 per rank: the step is taken on both, not skipped as empty
    assert r0["uneven"] == r1["uneven"] == pytest.approx(0.8 * r0["totals"][-1] + 0.2 * BATCH / 2)
    assert r0["rebalanced"] == r1["rebalanced"] == (300 + 400) / 2
    ema_totals(0, 1, "", str(tmp_path))  # one process: the same scale
    solo = torch.load(tmp_path / "rank0.pt")
    for total in solo["totals"]:
        assert abs(total - BATCH) < 1e-2 * BATCH, solo["totals"]
    assert solo["rebalanced"] == 300
