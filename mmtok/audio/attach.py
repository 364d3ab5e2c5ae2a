"""One audio tokenizer checkpoint from two: a tokenizer and a learned vocoder for its log-mel.

A vocoder trained on a tokenizer's decoded log-mel (stage 2; with ``--train-decoder``, the tuned
tokenizer saved beside it) records that tokenizer's fingerprint (:func:`trained_on`), and joins no
other but a codebook pruned from it, once or more, with an attached vocoder between or not
(:func:`attach_refusal`; ``mmtok prune-codebook`` keeps each kept code's vector and the decoder, so
those codes decode as before, :func:`~mmtok.vq.prune.decodes_as`) and not since changed (a tuned
decoder decodes otherwise); one trained on the true log-mel joins any tokenizer of its front end.

>>> import tempfile, os
>>> from mmtok.audio.config import AudioTokenizerConfig
>>> from mmtok.audio.vocoder import VocoderConfig
>>> from mmtok.vq.config import VQConfig
>>> tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8))
>>> voc = Vocoder(VocoderConfig(dim=8, intermediate=16, blocks=1))
>>> folder = attach_vocoder(tok, voc, os.path.join(tempfile.mkdtemp(), "audio-v2"))
>>> again = load_module(AudioTokenizer, folder)
>>> again.cfg.vocoder.dim, again.vocoder is not None, again.provenance["vocoder"]["source"]
(8, True, 'module')
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from mmtok.audio.config import AudioTokenizerConfig, front_end_mismatch
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.core.checkpoint import write_refusal
from mmtok.core.errors import CheckpointError
from mmtok.core.module_io import load_module, load_state_dict_checked, save_module
from mmtok.vq.prune import decodes_as

__all__ = ["SHIPPED_LIMIT_MB", "attach_refusal", "attach_vocoder", "attached_card", "folder_megabytes", "load_vocoder", "trained_on"]

SHIPPED_LIMIT_MB = 40.0  # the whole shipped audio checkpoint (tokenizer + vocoder) must stay under this


def folder_megabytes(folder: str | os.PathLike[str]) -> float:
    """Size of the files in ``folder`` (not recursive), in MB (10⁶ bytes)."""
    return round(sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 1e6, 2)


def load_vocoder(where: str | os.PathLike[str]) -> Vocoder:
    """A vocoder checkpoint, or the learned vocoder inside an audio tokenizer checkpoint (a folder or
    a shipped name such as ``audio``) with that vocoder's own provenance; a
    :class:`~mmtok.core.errors.CheckpointError` naming ``where`` for anything else."""
    try:
        return load_module(Vocoder, where)
    except CheckpointError as not_vocoder:
        try:
            tok = load_module(AudioTokenizer, where)
        except CheckpointError:
            raise not_vocoder from None
    if tok.vocoder is None:
        raise CheckpointError(f"checkpoint {where} is an audio tokenizer without a learned vocoder (Griffin-Lim only); name a "
                              "vocoder checkpoint or a tokenizer that has one")
    voc = tok.vocoder
    voc.provenance = dict((getattr(tok, "provenance", None) or {}).get("vocoder", {}).get("provenance") or {})
    return voc


def trained_on(voc: Vocoder) -> str | None:
    """The fingerprint of the tokenizer whose decoded log-mel ``voc`` was trained on, as its provenance records
    it: a ``--train-decoder`` run's tuned tokenizer of the vocoder's step (``tuned_tokenizer``), a stage-2
    run's ``--tokenizer``; None for a vocoder trained on the true log-mel (it fits any tokenizer of its front
    end) or one that recorded none (a ``--train-decoder`` run saved before the tuned one was recorded)."""
    prov = getattr(voc, "provenance", None) or {}
    if prov.get("features") != "decoded":
        return None
    if prov.get("train_decoder") is not None:
        return (prov.get("tuned_tokenizer") or {}).get("fingerprint")
    return (prov.get("tokenizer") or {}).get("fingerprint")


def attach_refusal(tok: AudioTokenizer, voc: Vocoder) -> str | None:
    """Why ``voc`` may not become ``tok``'s learned decoder (None when it may): it reads another log-mel
    front end, or it was trained on the decoded log-mel of another tokenizer (:func:`trained_on`) than
    ``tok`` or one whose codes ``tok``'s decode exactly as (:func:`~mmtok.vq.prune.decodes_as`: those its
    codebook was pruned from, while its weights are the ones the prune wrote)."""
    wrong = front_end_mismatch(tok.cfg, voc.cfg)
    if wrong:
        return f"the vocoder reads another log-mel than the tokenizer writes: {', '.join(wrong)}"
    want = trained_on(voc)
    same = decodes_as(tok)
    if want is not None and want != tok.fingerprint and want not in same:
        also = f" (its codes decode as those of {', '.join(same)})" if same else ""
        return (f"the vocoder was trained on the decoded log-mel of the tokenizer of fingerprint {want}, and this "
                f"tokenizer's fingerprint is {tok.fingerprint}{also}")
    return None


def _source(module: Any, where: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Where a part came from (a resolved folder, a shipped name or "module"), its steps and provenance."""
    prov = dict(getattr(module, "provenance", None) or {})
    if where is None:
        source = "module"
    else:
        source = str(Path(where).resolve()) if Path(where).exists() else str(where)
    return {"source": source, "steps": prov.get("steps"), "provenance": prov}


def attach_vocoder(
    tokenizer: str | os.PathLike[str] | AudioTokenizer, vocoder: str | os.PathLike[str] | Vocoder,
    out: str | os.PathLike[str], *, mel_match: int | None = None, mel_match_db: float | None = None,
    command: str | None = None,
) -> Path:
    """Write an audio tokenizer checkpoint at ``out``: ``tokenizer``'s config and weights (a shipped
    name, a folder or a module) with ``vocoder`` (a module, or what :func:`load_vocoder` reads) as its
    learned decoder, atomically. The codes are the tokenizer's, unchanged; ``decode`` uses the
    vocoder by default. ``mel_match`` sets the passes of the level correction the vocoder runs after
    decoding (``VocoderConfig.mel_match``) and ``mel_match_db`` its clamp (``mel_match_db``); None
    keeps the vocoder's own. The provenance records
    both sources, their steps and their own provenance, and ``command`` (the command line that attached
    them) when given; the folder's model card, ``README.md``, says the same (:func:`attached_card`), so
    no card of the tokenizer alone is left in it. A :class:`~mmtok.core.errors.CheckpointError`, before
    anything is read, for an ``out`` that holds anything but an audio tokenizer checkpoint (which is replaced),
    and for a pair :func:`attach_refusal` refuses."""
    refused = write_refusal(out, kind=AudioTokenizer.KIND)
    if refused:
        raise CheckpointError(f"cannot attach into {out}: it {refused}; give a new or empty folder")
    tok_where = None if isinstance(tokenizer, AudioTokenizer) else tokenizer
    voc_where = None if isinstance(vocoder, Vocoder) else vocoder
    tok = tokenizer if isinstance(tokenizer, AudioTokenizer) else load_module(AudioTokenizer, tokenizer)
    voc = vocoder if isinstance(vocoder, Vocoder) else load_vocoder(vocoder)
    refused = attach_refusal(tok, voc)
    if refused:
        raise CheckpointError(f"cannot attach vocoder {voc_where or 'module'} to tokenizer {tok_where or 'module'}: "
                              f"{refused}")
    cfg = copy.deepcopy(tok.cfg)
    asked = {k: v for k, v in (("mel_match", mel_match), ("mel_match_db", mel_match_db)) if v is not None}
    cfg.vocoder = dataclasses.replace(voc.cfg, **asked)  # a copy; replace() runs the range checks
    joined = AudioTokenizer(cfg)
    tensors = {k: v for k, v in tok.state_dict().items() if not k.startswith("vocoder.")}
    tensors.update({f"vocoder.{k}": v for k, v in voc.state_dict().items()})
    load_state_dict_checked(joined, tensors, where=f"{tok_where or 'tokenizer'} + {voc_where or 'vocoder'}")
    prov = {"built_by": "mmtok.audio.attach.attach_vocoder",
            "tokenizer": {**_source(tok, tok_where), "fingerprint": tok.fingerprint},
            "vocoder": _source(voc, voc_where)}
    if command is not None:
        prov["command"] = command
    return save_module(joined, out, provenance=prov, extra_files={"README.md": attached_card(joined.cfg, prov)})


def _commands(prov: dict[str, Any]) -> str:
    """A part's command lines as its provenance records them (the one that started it, each resume)."""
    lines = [f"`{prov['command']}`"] if prov.get("command") else ["not recorded"]
    lines += [f"resumed with `{line}`" for line in prov.get("resumed_with") or []]
    return "; ".join(lines)


def attached_card(cfg: AudioTokenizerConfig, prov: dict[str, Any]) -> str:
    """The model card of an attached checkpoint: the two parts, where each came from and the commands that
    trained them, and the command that attached them (``prov`` as :func:`attach_vocoder` records it)."""
    tok, voc = prov["tokenizer"], prov["vocoder"]
    voc_prov, tuned = voc.get("provenance") or {}, (tok.get("provenance") or {}).get("decoder_tuned")
    tuned_note = "" if not isinstance(tuned, dict) else \
        f"; its log-mel decoder tuned since, {tuned.get('steps')} steps in the vocoder run {tuned.get('with_vocoder_run')}"
    stage = voc_prov.get("stage") or "not recorded"
    match = "" if cfg.vocoder is None else f"; level correction: {cfg.vocoder.mel_match} pass(es), " \
        f"at most {cfg.vocoder.mel_match_db:g} dB each"
    return f"""# mmtok audio tokenizer with a learned vocoder

Codes and log-mel decoder of one audio tokenizer; waveform from a learned vocoder (attached{match}).
{cfg.sample_rate} Hz mono, {cfg.n_mels} mels, hop {cfg.hop_length},
{cfg.sample_rate // cfg.samples_per_token} tokens/s, one codebook of {cfg.vq.codebook_size} codes.

## Parts

- tokenizer: {tok["source"]} (fingerprint {tok.get("fingerprint")}, {tok.get("steps")} steps), trained by \
{_commands(tok.get("provenance") or {})}{tuned_note}
- vocoder: {voc["source"]} ({voc.get("steps")} steps, on {stage}), trained by {_commands(voc_prov)}
- last validation of the vocoder: {json.dumps(voc_prov.get("validation", {}))}
- attached by: {f"`{prov['command']}`" if prov.get("command") else "mmtok.audio.attach.attach_vocoder"}
"""
