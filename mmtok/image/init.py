"""How an image training run starts, and its codebook refits.

From the data (:func:`init_from_data`: PCA for the linear patch paths, k-means for the
codebook), or from another tokenizer (:func:`check_init_source`, :func:`init_from_model`:
its encoder and decoder, its codebook when the layout matches, else a new codebook fitted
to its encoder; the encoder or the decoder may grow by blocks on the code grid that start as
the identity, :func:`grow_blocks`), and :func:`rebalance_codebook`, the refit a run can ask for at
given steps.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from mmtok.core.errors import ImageError
from mmtok.image.crops import train_crops
from mmtok.image.model import pca_init
from mmtok.image.sizing import patchify
from mmtok.image.tokenizer import ImageTokenizer

__all__ = ["check_init_source", "encoder_outputs", "grow_blocks", "init_crops", "init_from_data",
           "init_from_model", "rebalance_codebook"]


@torch.no_grad()
def init_from_data(tok: ImageTokenizer, corpus: Sequence[torch.Tensor], args: argparse.Namespace) -> float:
    """PCA-initialise the linear patch paths, then k-means the codebook on encoder outputs.

    The untrained model then already codes like k-means over patches (in the PCA
    subspace); training improves on that. Returns the patch variance PCA keeps.
    """
    crops = init_crops(corpus, args)
    patches = patchify(crops, tok.downsample).reshape(-1, 3 * tok.downsample**2)  # (N, 3*f*f)
    kept = pca_init(tok.encoder, tok.decoder, patches)
    z = encoder_outputs(tok, crops)  # (n, h, w, L)
    tok.vq.train()(z)  # first training call: k-means on all of z
    tok.vq.reset_stats()
    return kept


SHAPE_FIELDS = {"encoder": ("patch", "enc_channels", "latent_dim"),  # config fields that shape each part's weights
                "decoder": ("patch", "latent_dim", "dec_channels", "dec_level_blocks")}


def check_init_source(tok: ImageTokenizer, src: ImageTokenizer, source: str) -> None:
    """Check ``src``, the tokenizer ``--init-from`` names (``source``), against ``tok``: the same
    encoder and decoder, or ones with more blocks on the code grid (``enc_blocks``, ``dec_blocks``;
    nothing else may differ)."""
    for part, field in (("encoder", "enc_blocks"), ("decoder", "dec_blocks")):
        mine, theirs = _shapes(getattr(tok, part)), _shapes(getattr(src, part))
        if mine != theirs and not _extra_blocks(mine, theirs):
            names = [n for n in (*SHAPE_FIELDS[part], field) if getattr(tok.cfg, n) != getattr(src.cfg, n)]
            said = ", ".join(f"{n} {_plain(getattr(tok.cfg, n))} (its: {_plain(getattr(src.cfg, n))})" for n in names)
            shaped, fewer = [n for n in names if n != field], getattr(tok.cfg, field) < getattr(src.cfg, field)
            fixes = ([f"leave {', '.join(shaped)} out of --config and the flags (the run then takes its own)"]
                     if shaped else []) + ([f"give {field} at least {getattr(src.cfg, field)}"] if fewer else [])
            raise ImageError(f"--init-from {source!r}: its {part} has another shape than this config's"
                             f"{f': {said}' if said else ''}; it may only grow by {field}: "
                             f"{' and '.join(fixes) or 'build this one to its shape'}, or leave out --init-from to train from "
                             "the data")


def _plain(value: object) -> object:
    """A config value as its JSON reads (a tuple of widths as a list)."""
    return list(value) if isinstance(value, tuple) else value


def _shapes(module: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def _extra_blocks(mine: dict[str, torch.Size], theirs: dict[str, torch.Size]) -> int:
    """How many code-grid blocks ``mine`` (an encoder's or decoder's shapes) has beyond ``theirs``; 0 if it is not that."""
    new = set(mine) - set(theirs)
    if not new or set(theirs) - set(mine) or any(mine[k] != v for k, v in theirs.items()) \
            or any(not k.startswith("blocks.") for k in new):
        return 0
    return len({k.split(".")[1] for k in new})


@torch.no_grad()
def grow_blocks(mine: torch.nn.Module, theirs: torch.nn.Module) -> int:
    """Load ``theirs`` (an encoder or decoder) into ``mine``, which may have more blocks on the
    code grid; returns how many it has beyond ``theirs``.

    The extra blocks are left as they are: in a freshly built tokenizer a residual block's
    last conv starts at zero, so they are the identity. A grown encoder gives exactly the
    source's latents (so its codes), a grown decoder exactly its pictures, until training
    moves them.
    """
    shapes, source = _shapes(mine), _shapes(theirs)
    extra = _extra_blocks(shapes, source)
    if not extra and shapes != source:
        raise ImageError(f"cannot load a {type(theirs).__name__} into this one: the shapes differ, "
                         "and not by extra blocks on the code grid")
    mine.load_state_dict(theirs.state_dict(), strict=not extra)
    return extra


def init_crops(corpus: Sequence[torch.Tensor], args: argparse.Namespace) -> torch.Tensor:
    """The ``--init-crops`` training crops the initialisations fit to (seeded by ``--seed``)."""
    g = torch.Generator().manual_seed(args.seed)
    return train_crops(corpus, args.init_crops, args, generator=g)


def encoder_outputs(tok: ImageTokenizer, crops: torch.Tensor) -> torch.Tensor:
    """Crops ``[n, 3, H, W]`` -> encoder outputs ``[n, h, w, L]``, 64 at a time."""
    return torch.cat([tok.latents(c.to(tok.device)) for c in crops.split(64)])


@torch.no_grad()
def init_from_model(tok: ImageTokenizer, src: ImageTokenizer, corpus: Sequence[torch.Tensor],
                    args: argparse.Namespace) -> str:
    """Copy encoder and decoder weights from ``src`` (see :func:`check_init_source`) into ``tok``
    (a deeper encoder or decoder keeps its extra blocks as they start: see :func:`grow_blocks`).

    The quantizer is copied too when its codebook has the same layout
    (:meth:`VQConfig.same_codebook`: its training knobs such as dead-code restarts may
    differ); otherwise (another lookup size, cosine codes, another K) it is fitted to the copied encoder's outputs
    on training crops: a low-dimensional lookup gets a whitened PCA in-projection (and
    an out-projection back to the same latents), then k-means. Returns a description.
    """
    enc, dec = (_grown_name(part, grow_blocks(getattr(tok, part), getattr(src, part))) for part in ("encoder", "decoder"))
    if src.vq.cfg.same_codebook(tok.vq.cfg):
        tok.vq.load_state_dict(src.vq.state_dict())
        return f"{enc}, {dec} and codebook from {args.init_from}"
    z = encoder_outputs(tok, init_crops(corpus, args))  # (n, h, w, L)
    vq = tok.vq
    if isinstance(vq.project_in, torch.nn.Linear):
        flat = z.reshape(-1, z.shape[-1]).float()
        mean = flat.mean(0)
        _, sv, v = torch.linalg.svd(flat - mean, full_matrices=False)  # v (L, L): principal directions in rows
        d = vq.cfg.lookup_dim
        scale = sv[:d] / flat.shape[0] ** 0.5  # (d,) std along each direction
        vq.project_in.weight.copy_(v[:d] / scale[:, None])  # whitened coordinates
        vq.project_in.bias.copy_(-(v[:d] / scale[:, None]) @ mean)
        # cosine codes are unit vectors: scale them back to a typical whitened length sqrt(d)
        gain = d**0.5 if vq.cfg.cosine else 1.0
        vq.project_out.weight.copy_(v[:d].T * scale[None] * gain)
        vq.project_out.bias.copy_(mean)
    vq.train()(z)  # first training call: k-means on all of z
    vq.reset_stats()
    return f"{enc} and {dec} from {args.init_from}; new quantizer ({vq.cfg.lookup_dim}-d lookup) fitted by k-means"


def _grown_name(part: str, grown: int) -> str:
    return part if not grown else f"{part} (and {grown} new identity block{'s' * (grown > 1)} on the code grid)"


@torch.no_grad()
def rebalance_codebook(tok: ImageTokenizer, corpus: Sequence[torch.Tensor], args: argparse.Namespace, step: int) -> float:
    """Refit the codebook to encoder outputs of fresh training crops (:meth:`VectorQuantizer.rebalance`).

    The crops come from their own generator (seeded by ``--seed`` and ``step``), so
    the training stream is unchanged. Returns the usage over those crops.
    """
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    was = tok.training
    tok.eval()
    zs = []
    for start in range(0, args.rebalance_crops, 64):
        n = min(64, args.rebalance_crops - start)
        crops = train_crops(corpus, n, args, generator=g)
        zs.append(tok.latents(crops.to(tok.device)))
    tok.train(was)
    stats = tok.vq.rebalance(torch.cat(zs), iters=args.rebalance_iters, min_frac=args.rebalance_min_frac)
    return stats.usage

