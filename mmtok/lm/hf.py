"""A trained run -> a transformers ``LlamaForCausalLM`` folder with the same logits.

mmtok's :class:`~mmtok.lm.model.Transformer` is a Llama: pre-RMSNorm blocks,
grouped-query attention without biases, a SwiGLU MLP, rotary positions with
the frequencies ``theta ** (-i / (E/2))``. Two things differ in layout only:

* mmtok rotates *consecutive* pairs of a head's channels ``(0, 1), (2, 3), ...``;
  Llama rotates the two *halves* ``(i, i + E/2)``. The query and key rows of each
  head are permuted (even channels first, then odd) so that Llama's rotation
  acts on the same pairs; attention scores are unchanged.
* mmtok fuses ``q, k, v`` into one ``qkv`` projection and ``gate, up`` into one
  ``gate_up``; they are split into Llama's separate projections.

The folder holds ``config.json``, ``model.safetensors`` and ``mmtok_vocab.json``
(the :class:`~mmtok.stream.vocab.Vocabulary`: ranges of text, special and media
ids, and its fingerprint), which is what maps ids back to text and media. Runs
trained with ``--rope-3d`` (3-D positions) have no Llama equivalent and are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from mmtok.core.checkpoint import save_tensors
from mmtok.core.checkpoint_folder import replace_folder, write_target
from mmtok.core.errors import MmtokError, UsageError
from mmtok.core.paths import holds_cwd
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.runs import load_run
from mmtok.stream.vocab import Vocabulary

__all__ = ["VOCAB_FILE", "export_hf", "llama_config", "llama_state_dict"]

VOCAB_FILE = "mmtok_vocab.json"


def _halves(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Rows of each head reordered from interleaved pairs to halves: ``[0, 2, 4, ..., 1, 3, 5, ...]``."""
    order = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    return w.view(heads, head_dim, -1)[:, order].reshape(heads * head_dim, -1)  # (heads*E, C)


def llama_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """The weights of ``model`` under Llama's names and layout."""
    cfg = model.cfg
    h, g, e, hidden = cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.hidden_dim
    out = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        qkv = block.attn.qkv.weight  # ((H+2G)*E, C)
        out[p + "self_attn.q_proj.weight"] = _halves(qkv[: h * e], h, e)
        out[p + "self_attn.k_proj.weight"] = _halves(qkv[h * e : (h + g) * e], g, e)
        out[p + "self_attn.v_proj.weight"] = qkv[(h + g) * e :]
        out[p + "self_attn.o_proj.weight"] = block.attn.proj.weight
        out[p + "mlp.gate_proj.weight"] = block.mlp.gate_up.weight[:hidden]
        out[p + "mlp.up_proj.weight"] = block.mlp.gate_up.weight[hidden:]
        out[p + "mlp.down_proj.weight"] = block.mlp.down.weight
        out[p + "input_layernorm.weight"] = block.norm1.weight
        out[p + "post_attention_layernorm.weight"] = block.norm2.weight
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = model.head.weight
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in out.items()}


def llama_config(cfg: ModelConfig, vocab: Vocabulary) -> dict[str, Any]:
    """The ``config.json`` of the equivalent ``LlamaForCausalLM``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # older transformers
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},  # transformers >= 5
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": vocab.id("<bos>"),
        "eos_token_id": vocab.id("<eos>"),
        "pad_token_id": vocab.id("<pad>"),
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": True,
    }


def export_hf(run: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the newest checkpoint of ``run`` as a ``LlamaForCausalLM`` folder ``out``; returns a summary.

    ``transformers.AutoModelForCausalLM.from_pretrained(out)`` gives the logits of
    ``mmtok.load_run(run)`` (positions ``0..T-1``); ``out/mmtok_vocab.json`` says
    what each id is. ``out`` must be new, empty or an earlier export (it holds ``mmtok_vocab.json``),
    and not the current folder. The export is written into a temporary folder beside ``out`` that takes
    its place once complete (:func:`~mmtok.core.checkpoint_folder.replace_folder`): an export stopped
    part-way leaves ``out`` as it was, and running it again finishes it.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; nothing was written")
    if target.is_dir() and any(target.iterdir()) and not (target / VOCAB_FILE).is_file():
        raise UsageError(f"--out {out} holds files and no earlier export ({VOCAB_FILE}); give a new or empty folder")
    if holds_cwd(target):
        raise UsageError(f"--out {out} is the current folder or holds it, which the export would replace; give a "
                         "folder beside it")
    model, vocab, _ = load_run(run)
    cfg = model.cfg
    if cfg.rope_3d:
        raise MmtokError(f"{run} was trained with --rope-3d (3-D rotary positions), which Llama cannot express; "
                         "export a run trained with 1-D positions")
    ranges = {name: [r.start, r.stop] for name in ("text", "special", *vocab.media) for r in [vocab.range(name)]}

    def fill(folder: Path) -> None:
        save_tensors(llama_state_dict(model), folder / "model.safetensors", metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(llama_config(cfg, vocab), indent=2) + "\n")
        (folder / VOCAB_FILE).write_text(json.dumps({
            "format": "mmtok-hf-vocab", "format_version": 1, "fingerprint": vocab.fingerprint, "size": vocab.size,
            "ranges": ranges, "vocab": vocab.to_dict(),
        }, indent=2) + "\n")

    replace_folder(write_target(target), fill, marker=VOCAB_FILE)
    return {"out": str(target), "vocab_size": cfg.vocab_size, "layers": cfg.n_layer,
            "params": model.num_params(non_embedding=False), "fingerprint": vocab.fingerprint,
            "tied_embeddings": cfg.tie_embeddings}
