"""Under torch.distributed every rank must hold the same codebook (2 gloo processes on CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mmtok


def rank_data(rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + rank)
    centers = torch.randn(40, 8, generator=g) + 3 * rank  # the ranks see different data
    return centers[torch.randint(0, 40, (6000,), generator=g)] + 0.1 * torch.randn(6000, 8, generator=g)


def train_rank(rank: int, world: int, init_file: str, out_dir: str, distributed: bool, silence: float = 0.0) -> None:
    torch.set_num_threads(1)
    if distributed:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different local randomness: the sync must not depend on it
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=128, dead_code_threshold=3.0,
                                              dead_code_rate=0.3 if silence else 0.0))
    data = rank_data(rank)
    for step in range(12):
        batch = data[step * 500 : (step + 1) * 500].clone()
        batch[: int(silence * 500)] = 0.0  # one vector, repeated on every rank
        vq(batch)
    torch.save(
        {"embed": vq.embed, "ema_count": vq.ema_count, "ema_sum": vq.ema_sum},
        Path(out_dir) / f"rank{rank}.pt",
    )
    if distributed:
        dist.destroy_process_group()


def run(tmp_path: Path, distributed: bool, silence: float = 0.0) -> list[dict[str, torch.Tensor]]:
    out = tmp_path / f"{'ddp' if distributed else 'solo'}-{silence}"
    out.mkdir()
    mp.spawn(
        train_rank, args=(2, str(tmp_path / f"init-{distributed}-{silence}"), str(out), distributed, silence),
        nprocs=2, join=True,
    )
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def test_ddp_ranks_hold_identical_codebooks(tmp_path: Path) -> None:
    r0, r1 = run(tmp_path, distributed=True)
    for key in ("embed", "ema_count", "ema_sum"):
        assert torch.equal(r0[key], r1[key]), key
    # the codebook learned both ranks' data: codes sit near rank 0's and near rank 1's clusters
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=128)).eval()
    vq.embed.copy_(r0["embed"])
    for rank in (0, 1):
        x = rank_data(rank)
        err = (vq.decode(vq.encode(x)) - x).pow(2).sum(1).mean()
        assert float(err) < 0.2, (rank, float(err))

    # without the process group the same per-rank runs drift apart: the sync is what made them equal
    s0, s1 = run(tmp_path, distributed=False)
    assert not torch.equal(s0["embed"], s1["embed"])


def test_ddp_restarts_on_repeated_inputs_agree_and_leave_no_twins(tmp_path: Path) -> None:
    # 40 % of every rank's batches is one vector: restarts drawn from all ranks' distinct inputs,
    # none already a code, the same on both ranks
    r0, r1 = run(tmp_path, distributed=True, silence=0.4)
    for key in ("embed", "ema_count", "ema_sum"):
        assert torch.equal(r0[key], r1[key]), key
    assert torch.unique(r0["embed"], dim=0).shape[0] == 128  # no two codes on one point
