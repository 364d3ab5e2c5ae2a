"""Training the transformer on token shards: one process, or many under ``torchrun``.

``mmtok train --data SHARDS --out RUN [--preset tiny] [--steps N] [--resume]``

* AdamW (fused on CUDA), linear warmup then cosine decay, gradient accumulation
  and clipping, bf16 autocast on CUDA, optional ``torch.compile``, seeded.
* Logs every step to ``RUN/log.jsonl`` (loss overall and per modality, tokens/s,
  MFU, learning rate), shows a progress bar, and plots ``RUN/loss.png``.
* Checkpoints ``RUN/ckpt-NNNNNNN/`` (model + optimizer + data position + RNG, the
  atomic folder format of :mod:`mmtok.core.checkpoint`) every ``save_every`` steps,
  keeping the last ``keep_last``. A run killed at any moment and restarted with
  ``--resume`` continues the same loss curve (bit for bit on the CPU); a damaged newest
  checkpoint is passed over (said on stderr) for the one before it. What a resumed run keeps
  (its shards, model, data order and global batch; ``--steps`` not below the step reached) is
  :mod:`mmtok.lm.train_checks`'s; a ``--steps`` other than the run's redraws the cosine to end there
  (said on stderr, with the learning rate of the next step before and after).
* A folder that already holds a run is refused unless ``--resume`` (continue) or
  ``--overwrite`` (start over), and one of files that are no run's is refused even then
  (:data:`mmtok.lm.runs.RUN_MARKS`); ``RUN/.lock`` keeps a second process out while
  one trains, and is taken before the folder is looked at, which puts back a checkpoint a killed
  run left mid-swap and removes the temporary files of stopped processes
  (:func:`mmtok.core.run_lock.hold_run_folder`). A run that fails before writing anything leaves no
  folder it made behind.
* A window that holds several documents attends through a ``batch_size × seq_len²`` mask (and its float copy
  on the CPU): memory quadratic in ``seq_len``. Before the first step, a run whose step would need more
  memory than the machine has available is refused (:func:`mmtok.lm.peak.check_step_memory`), naming
  ``--seq-len`` and ``--batch-size``.
* Documents longer than ``--seq-len`` (cut across windows: the model never attends over one whole) are said
  before a run's first step in one :class:`~mmtok.lm.windows.LongDocumentsWarning`: how many, the longest,
  and a ``--seq-len`` long enough for 95% of them (:mod:`mmtok.lm.windows`); not again on ``--resume``.
  ``--packing documents`` fills each window with whole documents instead (padding the rest at loss weight 0).
* A non-finite loss stops the run with :class:`TrainingError` naming the step, before
  the optimizer steps on it, and so do weights that a step left non-finite (a diverging run), before
  they are saved, and optimizer moments that overflowed, before a checkpoint: no checkpoint holds NaNs
  (:mod:`mmtok.core.divergence`; ``--resume`` passes over one that does). At the first step since the run
  started or resumed the message blames the loss weights or the weights it started from, not the rate.
* Under ``torchrun`` (any ``WORLD_SIZE``, 1 included): DDP with NCCL on GPUs, gloo on CPUs;
  every tensor reduced across ranks lives on the training device. ``--out`` is one folder shared by
  every node (only rank 0 writes it): ranks that resume from different checkpoints stop with one error
  (:mod:`mmtok.lm.ranks`).
  The loss is normalised by the global weight sum, so N ranks of batch B give
  the same loss as one process of batch N·B (to float rounding).
* A rank whose ``torchrun`` is killed outright stops too, and shard files that change under a run stop it
  before its next checkpoint, which is not written (:mod:`mmtok.lm.watch`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmtok.core.checkpoint import read_config
from mmtok.core.device import device_record, pick_device
from mmtok.core.divergence import (
    Start,
    Trained,
    check_state_finite,
    check_weights_finite,
    loss_not_finite,
)
from mmtok.core.errors import CheckpointError
from mmtok.core.files import write_atomic
from mmtok.core.run_folder import check_run_folder, say_starting_afresh
from mmtok.core.run_lock import hold_run_folder
from mmtok.core.schedule import warmup_note
from mmtok.core.trainstate import load_newest_intact, load_train_state, save_train_state
from mmtok.core.warning_filters import user_stacklevel
from mmtok.data.packing import PackedDataset
from mmtok.lm.model import PRESETS, ModelConfig, Transformer
from mmtok.lm.peak import check_step_memory, peak_flops
from mmtok.lm.ranks import check_launch, resume_on_every_rank
from mmtok.lm.runs import (
    CKPT_PREFIX,
    LOG_NAME,
    MODALITIES,
    RUN_MARKS,
    checkpoint_folders,
    clear_run,
    latest_checkpoint,
    plot_loss,
    read_log,
    refuse_newer,
    run_settings,
    set_aside_damaged,
)
from mmtok.lm.train_checks import check_same_model, check_same_shards, check_settings, split_note
from mmtok.lm.train_config import SCHEDULE_FIELDS, TrainConfig, check_config, lr_at
from mmtok.lm.watch import HeldShards, stop_with_launcher
from mmtok.lm.windows import (
    LongDocumentsWarning,
    document_lengths,
    long_documents_note,
    window_fit,
    windows_phrase,
)
from mmtok.stream.vocab import Modality, Vocabulary

__all__ = ["train"]


# --------------------------------------------------------------------------- helpers


def _positions(doc: torch.Tensor) -> torch.Tensor:
    """Position of every token inside its document within the window: ``[B, T]``."""
    t = doc.shape[1]
    idx = torch.arange(t).expand_as(doc)
    starts = torch.ones_like(doc, dtype=torch.bool)
    starts[:, 1:] = doc[:, 1:] != doc[:, :-1]
    first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(1).values  # (B, T) start of each doc
    return idx - first


class _Batches:
    """Deterministic stream of micro-batches from a global sample counter (resumable)."""

    def __init__(self, ds: PackedDataset, batch_size: int) -> None:
        self.ds, self.batch_size = ds, batch_size

    def get(self, consumed: int) -> dict[str, torch.Tensor]:
        items = []
        for j in range(consumed, consumed + self.batch_size):
            epoch, i = divmod(j, len(self.ds))
            if epoch != self.ds.epoch:
                self.ds.set_epoch(epoch)
            items.append(self.ds[i])
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# --------------------------------------------------------------------------- the loop


@dataclass
class _Run:
    """Everything one training run holds between steps."""

    cfg: TrainConfig
    device: torch.device
    world: int  # processes in the run
    rank: int  # this process
    folder: Path  # the run folder
    ds: PackedDataset
    model: Transformer
    opt: torch.optim.Optimizer
    saved_cfg: dict[str, Any]  # the config every checkpoint records
    step: int = 0  # optimizer steps done
    consumed: int = 0  # windows read by all processes together
    net: torch.nn.Module | None = None  # the model as called: compiled and/or DDP-wrapped
    peak: float | None = None  # peak FLOP/s assumed for MFU (None: not reported)
    begun: Start = field(default_factory=lambda: Start.of(0))  # the weights the run started or resumed from
    held: HeldShards | None = None  # the shard files as the run opened them (checked before each checkpoint)

    @property
    def ddp(self) -> bool:  # launched by torchrun: a process group, even of one rank
        return dist.is_available() and dist.is_initialized()

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def vocab(self) -> Vocabulary:
        return self.ds.vocab


def _init_process(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, world size, rank); joins the process group under ``torchrun`` (any world size)."""
    check_launch()  # a WORLD_SIZE left in the shell is no torchrun
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(cfg.device)
    if world > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    stop_with_launcher(Path(cfg.out), rank=rank)  # a torchrun killed outright leaves no rank training on
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device, world, rank


def _setup(cfg: TrainConfig, *, resume: bool, clear: bool = False) -> _Run:
    """Device, process group, data, model and optimizer; the newest checkpoint's state with ``resume``.
    With ``clear`` (``--overwrite``) the earlier run in ``cfg.out`` is removed, but only once the data
    and the model are known to be good: a mistyped ``--data`` leaves it as it was."""
    device, world, rank = _init_process(cfg)
    folder = Path(cfg.out)
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    # every process sees the whole window order and takes its own samples from it (see _optimisation_step),
    # so N ranks with batch B read exactly the windows one process with batch N·B reads
    ds = PackedDataset(cfg.data, cfg.seq_len, seed=cfg.seed, rank=0, world_size=1, positions_3d=cfg.rope_3d,
                       packing=cfg.packing)
    mcfg = ModelConfig.preset(
        cfg.preset, vocab_size=ds.vocab.size, max_seq_len=max(cfg.seq_len, PRESETS[cfg.preset]["max_seq_len"]),
        rope_3d=cfg.rope_3d, dropout=cfg.dropout
    )
    several_docs = ds.shards.num_docs > 1 or (ds.num_tokens - 1) % cfg.seq_len > 0  # a window with a mask
    check_step_memory(mcfg, device, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, seq_len=cfg.seq_len,
                      several_docs=several_docs)
    model = Transformer(mcfg).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=device.type in ("cuda", "cpu"),
    )
    saved_cfg = {"model": asdict(mcfg), "train": asdict(cfg), "vocab": ds.vocab.to_dict(),
                 "fingerprint": ds.vocab.fingerprint, "tokenizers": ds.shards.manifests[0].get("tokenizers"),
                 "shards": {"tokens": ds.num_tokens, "digest": ds.shards.digest},
                 "batch": {"world_size": world, "global": cfg.batch_size * cfg.grad_accum * world}}
    r = _Run(cfg, device, world, rank, folder, ds, model, opt, saved_cfg, held=HeldShards(ds.shards))
    if clear:
        clear_run(folder)
    _resume(r, resume)
    if r.master and r.step == 0:  # a run that starts (a resumed one was told when it did, and keeps its --seq-len)
        fit = window_fit(document_lengths(ds.shards), seq_len=cfg.seq_len, packing=cfg.packing)
        if note := long_documents_note(fit, seq_len=cfg.seq_len, where=cfg.data, packing=cfg.packing):
            warnings.warn(LongDocumentsWarning(note), stacklevel=user_stacklevel())  # at the user's line
    # the CPU's peak is measured before torch.compile can start its compile workers on the same cores
    peak_note = ""
    if r.master:
        r.peak, peak_note = peak_flops(device)
    net: torch.nn.Module = model
    if cfg.compile:
        net = torch.compile(model)  # type: ignore[assignment]
    if r.ddp:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    r.net = net
    if r.master:
        total = sum(p.numel() for p in model.parameters())
        print(f"model {cfg.preset}: {total / 1e6:.2f} M parameters (embedding included), {r.vocab.size} ids in the "
              f"vocabulary, {windows_phrase(ds)}; model FLOPs utilisation (MFU) "
              f"is measured against {peak_note}")
    return r


def _resume(r: _Run, resume: bool) -> None:
    """Continue from the newest intact checkpoint (with ``resume``; under ``torchrun`` the same one on every rank,
    :func:`~mmtok.lm.ranks.resume_on_every_rank`, before anything is changed); cut the log back to the step
    resumed at."""
    unchecked: list[str | None] = [None]  # the note of the checkpoint loaded: shards it could not check

    def load(ck: Path) -> dict[str, Any]:  # the checks before the weights, shaped for the run's own, are loaded
        meta = read_config(ck, kind=Transformer.KIND)
        saved, state = meta.get("config"), meta.get("train") or {}
        saved = saved if isinstance(saved, dict) else {}
        check_settings(r.folder, r.saved_cfg, saved, step=int(state.get("step", 0)),
                       consumed=int((state.get("extra") or {}).get("consumed", 0)))
        unchecked[0] = check_same_shards(r.folder, r.cfg.data, r.saved_cfg, saved)
        return load_train_state(ck, model=r.model, optimizer=r.opt, kind=Transformer.KIND)

    def newest() -> tuple[Path, dict[str, Any]] | None:
        found = refuse_newer(checkpoint_folders(r.folder)) if resume else []
        if found:
            _check_same_model(r, found[-1])
        loaded = load_newest_intact(found, load, who="mmtok train" if r.master else None)
        if loaded is not None:
            saved_vocab = Vocabulary.from_dict(loaded[1]["config"]["vocab"], where=f"{loaded[0]}/config.json")
            saved_vocab.check_same(r.vocab, what=f"the shards in {r.cfg.data}")
        return loaded

    loaded = resume_on_every_rank(newest, folder=r.folder) if resume and r.ddp else newest()
    if loaded is not None and r.master and unchecked[0]:
        print(unchecked[0], file=sys.stderr)
    if loaded is not None:
        state = loaded[1]
        r.step, r.consumed = state["step"], int(state["extra"]["consumed"])
        r.begun = Start.of(r.step, resumed=loaded[0].name)
        if r.master:
            _say_changes(r, state["config"])
    elif resume and r.master:
        say_starting_afresh(r.folder, state_dir=f"{CKPT_PREFIX}*")
    if resume and r.master:
        set_aside_damaged(r.folder, r.step)
    log = r.folder / LOG_NAME
    if r.master and log.exists():  # keep the curve up to the resumed step (a line cut by a kill goes too)
        write_atomic(log, "".join(json.dumps(row) + "\n" for row in read_log(r.folder) if row["step"] <= r.step))


def _check_same_model(r: _Run, ckpt: Path) -> None:
    """A one-line :class:`ResumeMismatchError` when ``--resume`` asks for another model than the run's own."""
    try:
        saved = read_config(ckpt)["config"]
    except (CheckpointError, KeyError, TypeError):
        return  # a damaged newest checkpoint: load_newest_intact falls back and says so
    check_same_model(r.folder, r.saved_cfg["model"], saved)


def _say_changes(r: _Run, saved: dict[str, Any]) -> None:
    """On stderr, one line each: the run's global batch split otherwise, its cosine drawn over another ``--steps``
    or another ``--lr``, ``--min-lr`` or ``--warmup`` (the learning rate of the next step, by the run's own schedule,
    all its saved values, and by the new one)."""
    if note := split_note(r.folder, r.saved_cfg, saved, step=r.step, consumed=r.consumed):
        print(note, file=sys.stderr)
    own_train = saved.get("train") or {}
    own = replace(r.cfg, **{k: type(getattr(r.cfg, k))(own_train[k]) for k in SCHEDULE_FIELDS if k in own_train})
    changed = [k for k in SCHEDULE_FIELDS if getattr(own, k) != getattr(r.cfg, k)]
    if changed and r.step < r.cfg.steps:
        before, after = lr_at(own, r.step), lr_at(r.cfg, r.step)
        flags = ", ".join(f"--{k.replace('_', '-')} {getattr(r.cfg, k):g} (the run's: {getattr(own, k):g})"
                          for k in changed)
        how = ("stretches" if r.cfg.steps > own.steps else "squeezes") if "steps" in changed else "changes"
        end = f" to end at step {r.cfg.steps}" if "steps" in changed else ""
        print(f"mmtok train: {flags} {how} the cosine of {r.folder}{end}: the learning rate at step {r.step + 1} is "
              f"{after:.3g} (by the run's own schedule: {before:.3g})", file=sys.stderr)


def _newest_checkpoint(folder: Path) -> str:
    """What a run stopped by diverging weights has on disk, as its message says it."""
    last = latest_checkpoint(folder)
    return f"no checkpoint written for it (newest: {last.name if last else 'none'})"


def _optimisation_step(r: _Run, batches: _Batches) -> tuple[torch.Tensor, float]:
    """One optimizer step over ``grad_accum`` micro-batches per process.

    Returns the loss sums of all processes (see :func:`_loss_sums`) and the learning rate used.
    """
    cfg = r.cfg
    lr = lr_at(cfg, r.step)
    for group in r.opt.param_groups:
        group["lr"] = lr
    # everything all-reduced lives on the training device: NCCL reduces no CPU tensors
    sums = torch.zeros(2 + 2 * len(MODALITIES), dtype=torch.float64, device=r.device)
    micro = [batches.get(r.consumed + (k * r.world + r.rank) * cfg.batch_size) for k in range(cfg.grad_accum)]
    weight_total = torch.tensor(sum(float(b["loss_weight"].sum()) for b in micro), dtype=torch.float64,
                                device=r.device)
    if r.ddp:
        dist.all_reduce(weight_total)
    norm = max(float(weight_total), 1e-8)  # the loss is normalised by the global weight sum
    for k, b in enumerate(micro):
        sums += _micro_step(r, b, norm, sync=k == cfg.grad_accum - 1)
    if r.ddp:
        dist.all_reduce(sums)
    sums = sums.cpu()
    loss = float(sums[0] / max(float(sums[1]), 1e-12))
    if not math.isfinite(loss):  # every rank sees the same sums: all stop together, before stepping
        raise loss_not_finite(loss, step=r.step + 1, flag="--lr", lr=cfg.lr, batch=[b["loss_weight"] for b in micro],
                              start=r.begun, kept=lambda: _newest_checkpoint(r.folder))
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), cfg.grad_clip)
    r.opt.step()
    # the same weights on every rank: all stop together, before any checkpoint
    check_weights_finite(r.model, step=r.step + 1, lr=cfg.lr, kept=lambda: _newest_checkpoint(r.folder))
    r.opt.zero_grad(set_to_none=True)
    r.consumed += cfg.batch_size * cfg.grad_accum * r.world
    r.step += 1
    return sums, lr


def _micro_step(r: _Run, batch: dict[str, torch.Tensor], norm: float, *, sync: bool) -> torch.Tensor:
    """Forward and backward of one micro-batch (gradients all-reduced under DDP when ``sync``); its loss sums."""
    assert r.net is not None
    if not r.cfg.rope_3d:  # 3-D positions come with the windows (PackedDataset(positions_3d=True))
        batch["pos"] = _positions(batch["doc"])
    b = {key: v.to(r.device, non_blocking=True) for key, v in batch.items()}
    no_sync = nullcontext() if (not r.ddp or sync) else r.net.no_sync()  # type: ignore[operator]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if r.device.type == "cuda" else nullcontext()
    with no_sync, autocast:
        logits = r.net(b["ids"], pos=b["pos"], doc=b["doc"])  # (B, T, V)
        ce = F.cross_entropy(logits.float().flatten(0, 1), b["targets"].flatten(), reduction="none")
        ce = ce.view_as(b["loss_weight"])  # (B, T)
        loss = (ce * b["loss_weight"]).sum() / norm * r.world  # DDP averages over ranks
    loss.backward()
    with torch.no_grad():
        return _loss_sums(ce, b)


def _loss_sums(ce: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """float64 ``[2 + 2M]`` on ``ce``'s device: weighted loss and weight overall, then per modality of
    :data:`MODALITIES` (``b["target_modality"]``, the windows' own); no host synchronisation."""
    w, ce = b["loss_weight"].double(), ce.double()
    parts = [(ce * w).sum(), w.sum()]
    for m in MODALITIES:
        sel = (b["target_modality"] == int(Modality[m.upper()])).double() * w
        parts += [(ce * sel).sum(), sel.sum()]
    return torch.stack(parts)


def _log_row(r: _Run, sums: torch.Tensor, lr: float, seconds: float) -> dict[str, Any]:
    """The ``log.jsonl`` row of the step just done: loss overall and per modality, throughput, MFU."""
    cfg = r.cfg
    tokens = cfg.batch_size * cfg.grad_accum * r.world * cfg.seq_len
    # step, loss, lr, tokens_per_s in every row: runs.LOG_KEYS, by which a run's log is told from another's
    row: dict[str, Any] = {"step": r.step, "loss": round(float(sums[0] / max(sums[1], 1e-12)), 6), "lr": lr,
                           "tokens_per_s": round(tokens / seconds, 1)}
    for j, m in enumerate(MODALITIES):
        if sums[3 + 2 * j] > 0:
            row[f"loss_{m}"] = round(float(sums[2 + 2 * j] / sums[3 + 2 * j]), 6)
    if r.peak:
        row["mfu"] = round(r.model.flops_per_token(cfg.seq_len) * tokens / r.world / seconds / r.peak, 4)
    return row


def _log(r: _Run, row: dict[str, Any], bar: tqdm) -> None:
    if r.master:
        with open(r.folder / LOG_NAME, "a") as f:
            f.write(json.dumps(row) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")


def _checkpoint(r: _Run) -> None:
    """Every ``save_every`` steps and at the end: write a checkpoint, drop all but the last ``keep_last``."""
    if r.step % r.cfg.save_every and r.step != r.cfg.steps:
        return
    # the moments too (unclipped, they can overflow while the weights stay finite); on every rank, as all must stop
    clip = "" if r.cfg.grad_clip > 0 else " or clip the gradients (--grad-clip, off in this run)"
    check_state_finite([Trained("the transformer", "--lr", r.cfg.lr, module=r.model, optimizer=r.opt, hint=clip)],
                       step=r.step, kept=lambda: _newest_checkpoint(r.folder))
    if r.held is not None:  # the windows since the last checkpoint came from the shards the run records
        newest = latest_checkpoint(r.folder)
        r.held.check(step=r.step, kept=newest.name if newest else None, every_rank=r.ddp)
    if r.master:
        save_train_state(r.folder / f"{CKPT_PREFIX}{r.step:07d}", kind=Transformer.KIND, config=r.saved_cfg,
                         model=r.model, optimizer=r.opt, step=r.step, extra={"consumed": r.consumed},
                         provenance={"data": str(r.cfg.data), "fingerprint": r.saved_cfg["fingerprint"],
                                     **device_record(r.device)})
        for old in checkpoint_folders(r.folder)[: -r.cfg.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        plot_loss(r.folder)
    if r.ddp:
        dist.barrier()


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train a run into ``cfg.out``, or continue it (``resume``); returns the run folder.

    Settings no run can use are refused (:func:`~mmtok.lm.train_config.check_config`), and so is a folder that already holds a run
    (both a :class:`RunRefusedError`) unless ``resume`` (continue from its newest intact checkpoint; a folder
    with none starts the run afresh, said on stderr) or ``overwrite`` (drop its checkpoints and log, start over);
    one that holds files but no run is refused even then. The folder is held (:func:`hold_run_folder`) before
    it is looked at: ``cfg.out/.lock`` holds the process id, so a second run into the same folder is
    refused; a checkpoint a killed run left mid-swap is put back; a failed run removes the folders it made
    and left empty. A step that would need more memory than is available is a :class:`UsageError` before
    the first step (:func:`mmtok.lm.peak.check_step_memory`).
    """
    check_config(cfg, recorded=run_settings(cfg.out) if resume else None)
    device = pick_device(cfg.device)  # a GPU asked for and missing fails before anything is written
    folder = Path(cfg.out)
    master = int(os.environ.get("RANK", "0")) == 0
    threads = torch.get_num_threads()  # cfg.threads is the run's: the caller gets its own back
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:  # the run seeds torch's generators with cfg.seed: the caller gets its own back (fork_rng)
        with hold_run_folder(folder) if master else nullcontext(), torch.random.fork_rng(devices=gpus):
            check_run_folder(folder, resume=resume, overwrite=overwrite, marks=RUN_MARKS)  # every rank, before any writes
            return _train(cfg, resume=resume, clear=overwrite and not resume and master, progress=progress)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _train(cfg: TrainConfig, *, resume: bool, clear: bool, progress: bool) -> Path:
    r = _setup(cfg, resume=resume, clear=clear)
    if r.master and (note := warmup_note(cfg.warmup, cfg.steps, who="mmtok train")):  # a run that goes ahead
        print(note, file=sys.stderr)
    batches = _Batches(r.ds, cfg.batch_size)
    bar = tqdm(total=cfg.steps, initial=r.step, desc="train", disable=not (progress and r.master), unit="step")
    r.model.train()
    try:
        while r.step < cfg.steps:
            t0 = time.perf_counter()
            sums, lr = _optimisation_step(r, batches)
            if r.device.type == "cuda":
                torch.cuda.synchronize(r.device)
            _log(r, _log_row(r, sums, lr, time.perf_counter() - t0), bar)
            _checkpoint(r)
    finally:
        bar.close()
    if r.master:
        plot_loss(r.folder)
    if r.ddp:
        dist.barrier()
    return r.folder
