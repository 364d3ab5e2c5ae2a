"""The audio codebook: k-means over encoder outputs, balanced so that every code serves many speakers.

:func:`fit_codebook` runs Lloyd's k-means (:func:`mmtok.vq.kmeans.lloyd`, the one
k-means) on the encoder's vectors of the training clips, then :func:`balance_codes`:
rounds that retire codes serving fewer than ``min_groups`` groups (speakers, or
recordings) and split the clusters with the largest group-weighted distortion
instead, with :func:`weighted_lloyd` steps in which every (group, code) pair weighs
the same (:func:`pair_weights`). :func:`speaker_groups` tells the groups of the
training files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError
from mmtok.vq.kmeans import LloydStep, lloyd, lloyd_step
from mmtok.vq.search import nearest_code

__all__ = ["balance_codes", "clip_support", "fit_codebook", "pair_weights", "speaker_groups", "weighted_lloyd"]


def clip_support(idx: torch.Tensor, clips: torch.Tensor, k: int) -> torch.Tensor:
    """For each of ``k`` codes, how many distinct clips (or groups) have a row assigned to it."""
    return torch.bincount((clips * k + idx).unique() % k, minlength=k)


def pair_weights(idx: torch.Tensor, groups: torch.Tensor, k: int) -> torch.Tensor:
    """Row weights ``[N]`` that give every (group, code) pair a total weight of 1.

    Summed per code they count the distinct groups the code serves, so a cluster of
    a thousand near-identical slices of one recording weighs as much as one slice."""
    _, inv = torch.unique(groups * k + idx, return_inverse=True)
    return 1.0 / torch.bincount(inv).float()[inv]


def weighted_lloyd(rows: torch.Tensor, groups: torch.Tensor, centers: torch.Tensor, iters: int) -> torch.Tensor:
    """``iters`` Lloyd steps where each code moves to the :func:`pair_weights` mean of its rows:
    the center of what the groups it serves share, not of the group that has the most rows there."""
    k = centers.shape[0]
    return lloyd(rows, centers, iters, weights=lambda idx: pair_weights(idx, groups, k))[0]


def _retire_and_split(rows: torch.Tensor, centers: torch.Tensor, step: LloydStep, min_groups: int,
                      per_round: int, generator: torch.Generator) -> bool:
    """One balancing move, in place: up to ``per_round`` codes serving fewer than ``min_groups``
    groups (the least supported first) jump to a row drawn, in proportion to its weighted
    error, inside one of the clusters with the largest group-weighted distortion; a code whose cluster
    has no row to draw (identical rows, as of silence or steady tones, leave most clusters empty and
    without distortion) stays where it is. False when every code serves enough groups (nothing moved)."""
    support = step.mass  # distinct groups per code
    weak = (support < min_groups - 0.5).nonzero().flatten()
    if weak.numel() == 0:
        return False
    weak = weak[support[weak].argsort(stable=True)][:per_round]
    score = step.error.clone()
    score[weak] = -1.0
    for dst, src in zip(weak.tolist(), score.topk(weak.numel()).indices.tolist(), strict=True):
        members = (step.idx == src).nonzero().flatten()
        if members.numel() == 0:
            continue
        pick = torch.multinomial(step.row_error[members].clamp_min(1e-12), 1, generator=generator)
        centers[dst] = rows[members[pick]]
    return True


def balance_codes(rows: torch.Tensor, groups: torch.Tensor, centers: torch.Tensor, *, rounds: int,
                  min_groups: int, iters: int, generator: torch.Generator,
                  per_round: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-balanced k-means: LBG-style retire-and-split rounds with group-weighted Lloyd steps.

    ``rows`` [N, D] with ``groups`` [N], the group of each row: a speaker (voice and
    variant) for speech, the recording itself otherwise. A code serving fewer than
    ``min_groups`` groups fits the content of a few speakers or one outlier recording
    and is rarely hit by new audio. Each round retires up to ``per_round`` such codes
    (default K/8, the least supported first) and re-seeds each inside one of the
    clusters with the largest group-weighted distortion (a row drawn in proportion to
    its weighted error), then runs ``iters`` :func:`weighted_lloyd` steps, so that the
    codes settle on content many groups share. Ends early once every code serves
    ``min_groups`` groups. Returns the centers and the code counts of their assignment.
    """
    k = centers.shape[0]
    per_round = per_round or max(1, k // 8)
    centers = centers.clone()
    for _ in range(rounds):
        step = lloyd_step(rows, centers, weights=lambda idx: pair_weights(idx, groups, k))
        if not _retire_and_split(rows, centers, step, min_groups, per_round, generator):
            return centers, step.counts
        centers = weighted_lloyd(rows, groups, centers, iters)
    return centers, torch.bincount(nearest_code(rows, centers), minlength=k).float()


@torch.no_grad()
def fit_codebook(tok: AudioTokenizer, feats: Sequence[torch.Tensor], *, vectors: int, iters: int,
                 generator: torch.Generator, balance_rounds: int = 0, min_groups: int = 15,
                 balance_iters: int = 3, groups: Sequence[int] | None = None) -> torch.Tensor:
    """k-means over the vectors the encoder gives for ``feats`` (one tensor per clip); fills ``tok.vq``'s codes.

    Lloyd (:func:`mmtok.vq.kmeans.lloyd`: ``iters`` steps, seeds are random vectors, an
    empty cluster is re-seeded on the worst-served vectors) on at most ``vectors`` random
    vectors; then, if ``balance_rounds``, :func:`balance_codes` so that every code serves
    at least ``min_groups`` groups. ``groups`` gives each clip's group (its speaker, say);
    default: every clip is its own group. Returns the code counts of the last assignment.
    """
    ctx = tok.context_frames
    if groups is not None and len(groups) != len(feats):
        raise ValueError(f"fit_codebook: {len(groups)} groups for {len(feats)} clips")
    per_clip = [tok.latents(f[None].to(tok.device))[0].cpu() for f in feats]
    rows = torch.cat(per_clip)  # (N, D)
    gid = list(range(len(feats))) if groups is None else list(groups)
    row_groups = torch.cat([torch.full((r.shape[0],), g, dtype=torch.long) for g, r in zip(gid, per_clip, strict=True)])
    pick = torch.randperm(rows.shape[0], generator=generator)[:vectors]
    rows, row_groups = rows[pick].contiguous(), row_groups[pick]
    k = tok.codebook_size
    if rows.shape[0] < k:  # k-means seeds its codes on distinct vectors: it needs at least one per code
        raise AudioError(f"the training audio gives {rows.shape[0]} token vectors, fewer than the {k} codes to fit: "
                         "give more or longer clips, or a smaller --codebook-size")
    centers, counts = lloyd(rows, rows[:k].clone(), iters)
    if balance_rounds:
        centers, counts = balance_codes(rows, row_groups, centers, rounds=balance_rounds, min_groups=min_groups,
                                        iters=balance_iters, generator=generator)
    vq = tok.vq
    assert ctx >= 0 and vq.cfg.codebook_dim is None and not vq.cfg.cosine  # codes live in the encoder's space
    centers, counts = centers.to(vq.embed.device), counts.to(vq.embed.device)
    vq.embed.copy_(centers)
    vq.ema_count.copy_(counts)
    vq.ema_sum.copy_(centers * counts[:, None])
    vq.initted.fill_(True)
    return counts


def speaker_groups(files: Sequence[Path], spec: str) -> tuple[list[int], str]:
    """Group index of every training file for the balanced codebook, and a description.

    ``spec``: ``file`` (every file its own group), a JSON file mapping file names to
    group labels (files it does not name are their own group), or ``auto``: the
    ``voice`` of each espeak-ng clip in the corpus ``manifest.json`` next to the
    files' folder (what :func:`build_corpus` writes), else ``file``.
    """
    labels: dict[str, str] = {}
    how = "file"
    if spec == "auto":
        for cand in {f.parent.parent / "manifest.json" for f in files} | {f.parent / "manifest.json" for f in files}:
            if cand.is_file():
                man = json.loads(cand.read_text())
                for split in ("train", "heldout"):
                    labels.update({e["file"]: "voice:" + e["voice"] for e in man.get(split, []) if e.get("voice")})
                how = f"espeak-ng voice from {cand}"
    elif spec != "file":
        path = Path(spec)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise AudioError(f"--kmeans-groups {spec!r}: not a readable JSON file ({e})") from e
        if not isinstance(raw, dict):
            raise AudioError(f"--kmeans-groups {spec!r}: expected a JSON object mapping file names to groups")
        labels = {str(a): "label:" + str(b) for a, b in raw.items()}
        how = f"labels from {path}"
    index: dict[str, int] = {}
    out = [index.setdefault(labels.get(f.name, "file:" + str(f)), len(index)) for f in files]
    return out, f"{how}: {len(index)} groups over {len(files)} files"
