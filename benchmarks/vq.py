"""VQ core benchmark: nearest-code search speed and training quality, side by side.

Prints one JSON object per line:

* ``encode`` rows: our ``VectorQuantizer.encode`` vs ``vector_quantize_pytorch.VectorQuantize``
  (eval forward, the same codebook copied in, fed in slices of several sizes: its best slice
  counts, ``slices_tried`` has each one's median) vs the FLOP floor, i.e. the same
  ``x @ C.T`` products alone in cache-sized blocks with no argmin (best block size
  of several tried in the same run). Medians over interleaved repeats. Peak memory
  on the CPU: ours and the peer (at its best slice) each in a fresh process
  (:mod:`peak_memory`), the growth of resident memory during its first call
  (``peak_mib``) and a second one (``peak_mib_second_call``), since a process that
  ran the other side already holds the memory a call would add; the floor's in this
  process, its block buffer allocated beforehand. On CUDA the allocator's peak of
  each call, in this process.
* ``ratio`` rows: ours/peer speedup and ours/floor throughput, beside what the speed
  buys: the agreement of the two answers and each one's exactness against float64 ``cdist`` on the
  first 50,000 vectors (in blocks of 4,096 rows).
* ``train`` rows: codebook usage and quantization MSE on held-out vectors after
  training ours and VectorQuantize (k-means init + dead-code restart on in both)
  on the same batches of clustered data; with ``--repeat-shares``, also with that
  share of every batch replaced by one repeated vector (the origin: digital
  silence), counting the codes that end on a point another code holds
  (``duplicate_codes``: the search can never tell them apart) and those within the twin
  tolerance of an earlier code (``twin_codes``, as ``mmtok info`` counts them: encode never
  gives them). The two train in alternating timed segments (``--train-rounds``, the order
  swapped every round), each on its own random stream, so machine load hits both alike and
  the codebooks are the same whatever the number of segments; a train ``ratio`` row has the
  median over rounds of the peer/ours time of a segment. On CUDA each train row also counts, over 20
  more steps, the calls per step that made the host wait for the device and the kernels it launched
  (``host_waits``).

Without ``vector_quantize_pytorch`` (``pip install mmtok[bench]``) a row names the missing peer and ours
is measured alone: its ``encode``, floor and ``train`` rows as above, and ``ratio`` rows whose peer
columns are null, with a ``peer`` note that says why.

Usage: ``python benchmarks/vq.py [--n 262144] [--ks 1024 8192] [--repeats 5] [--device cpu]
[--repeat-shares 0 0.3] [--train-steps 200] [--train-rounds 10] [--skip-encode] [--skip-train]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    RATIO_OF,
    ROUND_RATIO_OF,
    Timing,
    emit,
    host_waits,
    kernel_launches,
    missing_peer,
    pick_device,
    positive,
    positives,
    ratio,
    round_ratios,
    run_script,
    share,
    time_sides,
)
from peak_memory import fresh_peaks

import mmtok
from mmtok.core.memory import PeakMemory
from mmtok.core.metrics import codebook_usage
from mmtok.synth.clustered import make_clustered
from mmtok.vq.search import block_rows, canonical_codes

EXACT_ROWS = 50_000  # vectors of each encode row checked against float64 cdist
EXACT_BLOCK_ROWS = 4096  # rows per cdist block of that check: 256 MiB of float64 distances at K = 8192
PEER = "vector_quantize_pytorch"  # the peer every row compares with


def device_sync(device: torch.device) -> Callable[[], None] | None:
    """What :func:`common.time_sides` calls around each clock reading on ``device`` (None on the CPU): a
    synchronize of that device, not of the current one."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def exact_nearest(x: torch.Tensor, codes: torch.Tensor, rows: int = EXACT_BLOCK_ROWS) -> torch.Tensor:
    """The nearest code of each row of ``x`` by float64 ``cdist``, ``rows`` rows at a time: one
    ``[rows, K]`` float64 block in memory whatever ``len(x)`` is.

    >>> exact_nearest(torch.tensor([[0.9, 1.2], [4.0, 4.5], [-1.0, 0.1]]),
    ...               torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), rows=2).tolist()
    [1, 2, 0]
    """
    c = codes.double()
    return torch.cat([torch.cdist(x[s : s + rows].double(), c).argmin(1) for s in range(0, x.shape[0], rows)])


def floor_fn(x: torch.Tensor, codes: torch.Tensor, rows: int) -> Callable[[], None]:
    buf = torch.empty(rows, codes.shape[0], device=x.device)
    ct = codes.t()

    def run() -> None:
        for s in range(0, x.shape[0], rows):
            block = x[s : s + rows]
            torch.mm(block, ct, out=buf[: block.shape[0]])

    return run


def peer_quantizer(codes: torch.Tensor, **kwargs: object) -> torch.nn.Module:
    from vector_quantize_pytorch import VectorQuantize

    k, d = codes.shape
    vq = VectorQuantize(dim=d, codebook_size=k, **kwargs).to(codes.device)  # no k-means init: codes are set
    with torch.no_grad():
        vq.codebook = codes  # the peer's public setter
    return vq.eval()


def encode_inputs(n: int, k: int, d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors ``[n, d]`` and codebook ``[k, d]`` an encode row searches (seeded by ``k``)."""
    g = torch.Generator().manual_seed(k)
    x = torch.randn(n, d, generator=g).to(device)
    return x, torch.randn(k, d, generator=g).to(device)


def ours_quantizer(codes: torch.Tensor) -> mmtok.VectorQuantizer:
    k, d = codes.shape
    ours = mmtok.VectorQuantizer(mmtok.VQConfig(dim=d, codebook_size=k, kmeans_init=False)).to(codes.device).eval()
    ours.embed.copy_(codes)
    return ours


def peer_fn(peer: torch.nn.Module, x: torch.Tensor, rows: int) -> Callable[[], torch.Tensor]:
    """The peer's codes for all of ``x``, fed ``rows`` at a time."""
    @torch.inference_mode()
    def run_peer() -> torch.Tensor:  # the peer materialises a [rows, K] distance matrix per call
        return torch.cat([peer(x[None, s : s + rows])[1][0] for s in range(0, x.shape[0], rows)])

    return run_peer


def encode_call(impl: str, n: int, k: int, d: int, rows: int | None) -> Callable[[], object]:
    """One CPU encode of the row's inputs by ``impl`` (``"mmtok"``, or ``"vector_quantize_pytorch"`` fed ``rows``
    at a time), inputs and model built now: what :func:`peak_memory.fresh_peaks` runs in a fresh process."""
    x, codes = encode_inputs(n, k, d, torch.device("cpu"))
    if impl == "mmtok":
        ours = ours_quantizer(codes)
        return lambda: ours.encode(x)
    assert rows is not None, "the peer is fed a slice of rows at a time"
    return peer_fn(peer_quantizer(codes), x, rows)


def bench_encode(n: int, k: int, d: int, repeats: int, device: torch.device, peer_slices: list[int],
                 peer_missing: str | None = None) -> None:
    """The encode rows of one codebook size; with ``peer_missing`` (why the peer cannot run) ours and the
    floor alone, the ratio row's peer columns null and its ``peer`` note saying why."""
    x, codes = encode_inputs(n, k, d, device)
    ours, peer = ours_quantizer(codes), None if peer_missing else peer_quantizer(codes)
    # the peer tuned as the floor is: its best slice of several
    peers = {} if peer is None else {r: peer_fn(peer, x, r) for r in peer_slices}
    # agreement of the answers (not timed)
    idx_ours = ours.encode(x)
    sub = slice(0, min(n, EXACT_ROWS))
    brute = exact_nearest(x[sub], codes)
    exact = float((idx_ours[sub] == brute).float().mean())
    agree = exact_peer = None
    if peers:
        idx_peer = peers[peer_slices[0]]()
        agree = float((idx_ours == idx_peer).float().mean())
        exact_peer = float((idx_peer[sub] == brute).float().mean())

    floor_rows = [r for r in (256, 512, 1024, 2048, 4096) if r * k * 4 <= 64 * 2**20]
    if device.type == "cuda":
        floor_rows = [n]
    floors = {r: floor_fn(x, codes, r) for r in floor_rows}
    sides = {"ours": lambda: ours.encode(x), **{f"peer{r}": f for r, f in peers.items()},
             **{f"floor{r}": f for r, f in floors.items()}}
    timings = time_sides(sides, repeats=repeats, sync=device_sync(device), around=lambda _: PeakMemory(device))
    peaks = {name: max(m.peak_mib for m in t.around) for name, t in timings.items()}
    med = {name: t.median for name, t in timings.items()}
    best_floor = min(floor_rows, key=lambda r: med[f"floor{r}"])
    best_slice = min(peer_slices, key=lambda r: med[f"peer{r}"]) if peers else None
    in_process = {"ours": peaks["ours"]} | ({"peer": peaks[f"peer{best_slice}"]} if peers else {})
    mem = sides_peak_mib(n, k, d, device, best_slice, in_process)
    flops = 2.0 * n * d * k
    common = {"n": n, "dim": d, "codebook_size": k, "device": str(device), "repeats": repeats}
    emit({"bench": "vq_encode", "impl": "mmtok", **common, "seconds": round(med["ours"], 4),
          "vectors_per_s": round(n / med["ours"]), "gflops": round(flops / med["ours"] / 1e9, 1),
          **mem["ours"], "exact_vs_cdist": exact,
          "block_rows": block_rows(n, k, device, chunk_size=ours.cfg.chunk_size,
                                   budget_mb=ours.cfg.search_budget_mb)})
    if peers:
        med["peer"] = med[f"peer{best_slice}"]
        emit({"bench": "vq_encode", "impl": PEER, **common,
              "seconds": round(med["peer"], 4), "vectors_per_s": round(n / med["peer"]),
              **mem["peer"], "slice": best_slice,
              "slices_tried": {r: round(med[f"peer{r}"], 4) for r in peer_slices}, "agreement_with_mmtok": agree,
              "exact_vs_cdist": exact_peer})
    for r in floor_rows:
        emit({"bench": "vq_encode", "impl": "flop_floor_mm_only", **common, "block_rows": r,
              "seconds": round(med[f"floor{r}"], 4),
              "gflops": round(flops / med[f"floor{r}"] / 1e9, 1), "peak_mib": round(peaks[f"floor{r}"], 1)})
    emit({"bench": "vq_encode", "metric": "ratio", **common,
          "speedup_vs_vector_quantize": ratio(med.get("peer"), med["ours"], 2),
          "fraction_of_flop_floor": ratio(med[f"floor{best_floor}"], med["ours"], 3), "ratio_of": RATIO_OF,
          "timings": {"ours": timings["ours"].summary(),
                      "peer": timings[f"peer{best_slice}"].summary() if peers else None,
                      "floor": timings[f"floor{best_floor}"].summary()},
          "floor_block_rows": best_floor, "agreement": agree, "exact_vs_cdist_mmtok": exact,
          "exact_vs_cdist_vector_quantize": exact_peer, **({"peer": peer_missing} if peer_missing else {})})


def sides_peak_mib(n: int, k: int, d: int, device: torch.device, peer_rows: int | None,
                   in_process: dict[str, float]) -> dict[str, dict[str, object]]:
    """The peak-memory fields of the encode rows of the sides ``in_process`` names (``"ours"``, and ``"peer"``
    when it ran).

    On the CPU each side is measured in a fresh process (first and second call); on CUDA the allocator's
    peaks ``in_process`` (largest over the timed calls) are exact and kept.
    """
    if device.type == "cuda":
        how = "CUDA allocator peak above the start of the call, largest over the timed calls, in this process"
        return {side: {"peak_mib": round(v, 1), "peak_measured_by": how} for side, v in in_process.items()}
    out: dict[str, dict[str, object]] = {}
    for side, impl in (("ours", "mmtok"), ("peer", PEER)):
        if side not in in_process:
            continue
        first, second, how = fresh_peaks(encode_call, impl, n, k, d, peer_rows, threads=torch.get_num_threads())
        out[side] = {"peak_mib": None if first is None else round(first, 1),
                     "peak_mib_second_call": None if second is None else round(second, 1),
                     "peak_measured_by": f"{how}; in a fresh process with the inputs and model loaded"}
    return out


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The global random state that training draws from (k-means seeds, restarts): CPU, and CUDA's."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def train_in_rounds(trainers: dict[str, Callable[[int], object]], steps: int, rounds: int, device: torch.device,
                    seed: int) -> dict[str, Timing]:
    """Each trainer's :class:`common.Timing` of ``rounds`` consecutive segments of training steps
    ``0..steps-1`` (a trainer is a function of the step number), the trainers taking turns segment by
    segment (:func:`common.time_sides`, who goes first swaps every round; no warm-up: every step trains).
    Each draws from its own random stream (the first from the current one, the next from ``seed + 1``,
    ...), switched to outside the clock, so what it learns depends neither on ``rounds`` nor on the other
    trainer."""
    streams = {}
    for i, name in enumerate(trainers):
        if i:
            torch.manual_seed(seed + i)
        streams[name] = rng_state(device)
    bounds = [round(r * steps / rounds) for r in range(rounds + 1)]

    def segments(step: Callable[[int], object]) -> Callable[[], None]:
        starts = iter(range(rounds))

        def run() -> None:
            r = next(starts)
            for i in range(bounds[r], bounds[r + 1]):
                step(i)

        return run

    @contextlib.contextmanager
    def own_stream(name: str) -> Iterator[None]:
        set_rng_state(streams[name], device)
        yield
        streams[name] = rng_state(device)

    return time_sides({name: segments(step) for name, step in trainers.items()}, repeats=rounds, warmup=0,
                      sync=device_sync(device), around=own_stream)


def step_waits(step: Callable[[int], object], steps: int, device: torch.device) -> dict[str, float] | None:
    """On CUDA, per training step over ``steps`` more steps: the calls that made the host wait for the device
    (:func:`common.host_waits`) and the kernels launched (torch's profiler); None elsewhere."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    numbers = iter(range(steps))
    waits = host_waits(lambda: step(next(numbers)), steps, device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            step(i)
        torch.cuda.synchronize(device)
    return {"host_waits_per_step": waits, "kernel_launches_per_step": kernel_launches(prof.key_averages(), steps),
            "steps_counted": steps}


def bench_train(k: int, d: int, steps: int, batch: int, device: torch.device, repeat_share: float = 0.0,
                rounds: int = 10, peer_missing: str | None = None) -> None:
    """The train rows of one repeated share; with ``peer_missing`` (why the peer cannot run) ours alone, the
    ratio row's peer columns null and its ``peer`` note saying why."""
    data = make_clustered(300_000, d, 4 * k, seed=7).to(device)
    train, test = data[:250_000], data[250_000:]
    torch.manual_seed(0)
    ours = mmtok.VectorQuantizer(mmtok.VQConfig(dim=d, codebook_size=k, dead_code_threshold=2.0)).to(device)
    peer = None
    if not peer_missing:
        from vector_quantize_pytorch import VectorQuantize

        peer = VectorQuantize(dim=d, codebook_size=k, kmeans_init=True, threshold_ema_dead_code=2,
                              decay=0.99).to(device)
    g = torch.Generator().manual_seed(1)
    # on the device before the clock starts: moving each step's indices there would make both sides wait
    batches = [torch.randint(0, train.shape[0], (batch,), generator=g).to(device) for _ in range(steps)]
    n_repeat = round(repeat_share * batch)

    def batch_at(i: int) -> torch.Tensor:
        b = train[batches[i]]
        b[:n_repeat] = 0.0  # one vector, repeated
        return b

    trainers: dict[str, Callable[[int], object]] = {"mmtok": lambda i: ours(batch_at(i))}
    if peer is not None:
        trainers[PEER] = lambda i: peer(batch_at(i)[None])
        peer.train()
    ours.train()
    timings = train_in_rounds(trainers, steps, min(rounds, steps), device, seed=0)
    ours.eval()
    with torch.inference_mode():
        idx_o = ours.encode(test)
        results = [("mmtok", idx_o, ours.decode(idx_o))]
        codebooks = {"mmtok": ours.codebook}
        if peer is not None:
            rec_p, idx_p, _ = peer.eval()(test[None])
            results.append((PEER, idx_p[0], rec_p[0]))
            codebooks[PEER] = peer.codebook.reshape(k, d)
    common = {"codebook_size": k, "dim": d, "steps": steps, "batch": batch, "repeated_share": repeat_share,
              "rounds": timings["mmtok"].n}
    quality: dict[str, dict[str, float]] = {}  # per implementation: the rounded mse and usage its row shows
    ours.train()
    if peer is not None:
        peer.train()
    waits = {name: step_waits(step, min(20, steps), device) for name, step in trainers.items()}  # after the quality
    for name, idx, rec in results:
        usage, ppl = codebook_usage(torch.bincount(idx.flatten(), minlength=k))
        quality[name] = {"mse": round(float((rec - test).pow(2).mean()), 5), "usage": round(usage, 4)}
        emit({"bench": "vq_train", "impl": name, **common,
              "data": f"{4 * k} tight Gaussian clusters, held-out 50k vectors",
              "duplicate_codes": k - int(torch.unique(codebooks[name].detach().cpu(), dim=0).shape[0]),
              "twin_codes": int((canonical_codes(codebooks[name].detach()) != torch.arange(k, device=device)).sum()),
              "usage": quality[name]["usage"], "perplexity": round(ppl, 1),
              "mse": quality[name]["mse"], "train_seconds": round(sum(timings[name].seconds), 2),
              "segment_seconds_median": round(timings[name].median, 4), "timing": timings[name].summary(),
              **({"host_waits": waits[name]} if waits[name] else {})})
    per_round = round_ratios(timings[PEER], timings["mmtok"]) if peer is not None else None
    peer_quality = quality.get(PEER, {})
    emit({"bench": "vq_train", "metric": "ratio", **common,
          "speedup_vs_vector_quantize": round(statistics.median(per_round), 2) if per_round else None,
          "ratio_of": ROUND_RATIO_OF,
          "speedup_per_round": [round(x, 2) for x in per_round] if per_round else None,
          "mmtok_mse": quality["mmtok"]["mse"], "vector_quantize_mse": peer_quality.get("mse"),
          "mmtok_usage": quality["mmtok"]["usage"], "vector_quantize_usage": peer_quality.get("usage"),
          **({"peer": peer_missing} if peer_missing else {})})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=262_144)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--ks", type=int, nargs="+", default=[1024, 8192],
                    help="codebook sizes of the encode rows (the train rows use K = 1024)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--train-rounds", type=int, default=10,
                    help="timed training segments per trainer, alternating between the two")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-encode", action="store_true")
    ap.add_argument("--repeat-shares", type=float, nargs="+", default=[0.0],
                    help="train once per share (0 to 1) of each batch replaced by one repeated vector")
    args = ap.parse_args(argv)
    positives(args, "--n", "--dim", "--repeats", "--train-steps", "--train-rounds")
    for k in args.ks:
        positive("--ks", k)
    for repeated in args.repeat_shares:
        share("--repeat-shares", repeated)
    device = pick_device(args.device)
    emit({"bench": "machine", "platform": platform.platform(), "processor": platform.processor(),
          "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
          "device": str(device),
          "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None})
    why = missing_peer(PEER)  # without it, ours is measured alone and the ratio rows say why
    if why is not None:
        emit(bench="vq", peer=PEER, skipped=why)
    for k in [] if args.skip_encode else args.ks:
        # the peer materialises a [slice, K] distance matrix: several slice sizes up to 1 GiB, its best kept
        most = max(256, min(args.n, 2**30 // (4 * k)))
        slices = sorted({r for r in (256, 1024, 4096, 16384) if r < most} | {most})
        bench_encode(args.n, k, args.dim, args.repeats, device, slices, peer_missing=why)
    if not args.skip_train:
        for repeated in args.repeat_shares:
            bench_train(1024, args.dim, args.train_steps, 8192, device, repeated, args.train_rounds, peer_missing=why)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
