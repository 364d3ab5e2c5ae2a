"""The tokenizers ``mmtok sample`` samples a run with: the ones the run recorded, or those its caller names
(:func:`run_interleaver`; a recorded one that no longer loads is named as the run's, with the flag that passes it),
less any media tokenizer that is not the run's and the request does not need (:func:`without_stale`), and
whose ids must be the run's (:func:`check_run_vocab`).
"""

from __future__ import annotations

import os
import sys

from mmtok.core.errors import MmtokError, UsageError, VocabularyError
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary, tokenizer_fingerprint

__all__ = ["check_run_vocab", "run_interleaver", "without_stale"]


def run_interleaver(spec: TokenizerSpec, run: str | os.PathLike[str], shards: str, *, given: dict[str, str | None]
                     ) -> Interleaver:
    """The interleaver of ``spec`` (the tokenizers ``run`` recorded, ``given`` in place of some); a recorded one that
    no longer loads (a BPE or checkpoint folder moved or deleted since) is named as the run's, with its flag."""
    try:
        return build_interleaver(spec)
    except MmtokError as e:
        for key in ("text", "image", "audio", "video"):
            value = getattr(spec, key)
            if value is None or given.get(key) or (key == "text" and value == "byte"):
                continue
            try:
                build_interleaver(TokenizerSpec(**{key: value}))
            except MmtokError:
                raise UsageError(f"{run} was trained with the {key} tokenizer {value} (as its shards {shards} "
                                 f"record it), which does not load now: {e}; pass it with --{key} MODEL "
                                 f"(tokenizers={{'{key}': MODEL}} from Python)") from e
        raise


def without_stale(il: Interleaver, vocab: Vocabulary, force: str | None, run: str | os.PathLike[str]) -> Interleaver:
    """``il`` on the run's ``vocab`` without the media tokenizers the request does not need (every one but
    ``force``'s) whose model is another than the one the run recorded (said on stderr): their ids are sampled and
    shown as codes, never decoded. ``il`` itself when every tokenizer is the run's."""
    media = ("image", "audio", "video")
    stale = [name for name in media if name != force and getattr(il, name) is not None
             and vocab.sources.get(name) not in (None, tokenizer_fingerprint(getattr(il, name)))]
    if not stale:
        return il
    for name in stale:
        was, now = vocab.labels.get(name), getattr(getattr(il, name), "checkpoint_label", None)
        print(f"mmtok sample: {run} was trained with the {name} tokenizer {vocab.sources[name]}"
              f"{f' [{was}]' if was else ''}, not the one it names now ({tokenizer_fingerprint(getattr(il, name))}"
              f"{f' [{now}]' if isinstance(now, str) else ''}): {name} it samples is shown as codes, not decoded",
              file=sys.stderr)
    return Interleaver(vocab, text=il.text, **{name: None if name in stale else getattr(il, name) for name in media})


def check_run_vocab(il: Interleaver, vocab: Vocabulary, run: str | os.PathLike[str], *,
                    given: dict[str, str | None]) -> None:
    """A :class:`VocabularyError` when ``il`` makes other ids than the ``vocab`` ``run`` was trained on: naming the
    flags that chose its tokenizers (``given``) when any did, else the tokenizers the run recorded."""
    diff = il.vocab.differences(vocab)  # the run's vs these
    if not diff:
        return
    said = "; ".join(diff)
    flags = [f"--{key} {value}" for key, value in given.items() if value]
    if flags:
        raise VocabularyError(f"{run} was trained on other ids than the tokenizers {', '.join(flags)} make (the run's "
                              f"vs theirs: {said}): leave {', '.join(f.split()[0] for f in flags)} out to sample with "
                              "the run's own tokenizers, or give the ones it was trained with")
    raise VocabularyError(f"the tokenizers {run} records no longer make the ids it was trained on (the run's vs "
                          f"theirs: {said}): pass the ones it was trained with (--text, --image, --audio or --video "
                          "MODEL)")
