"""Context budgets: how many tokens a video costs, and what that length costs to train.

:mod:`~mmtok.context.planner` is arithmetic only: tokens per frame, window fit,
KV-cache memory and attention cost from numbers and the published presets of
:mod:`~mmtok.context.presets` (it reads no model files), with the whole-token counts (frames, chunks, markers, what a
window holds) in :mod:`~mmtok.context.counts`; :mod:`~mmtok.context.shipped` fills in the numbers of mmtok's
shipped tokenizers (the ``"mmtok"`` preset) and is the ``plan`` users call;
:mod:`~mmtok.context.growth` measures forward+backward time and memory against length;
:mod:`~mmtok.context.command` is ``mmtok context`` (its options built without torch).

Imports: :mod:`mmtok.core`, :mod:`mmtok.lm`; :mod:`~mmtok.context.shipped` also
:mod:`mmtok.pretrained`, :mod:`mmtok.stream` (configs only, never weights) and :mod:`mmtok.image.sizes`
(the native policy's working size).
"""

from __future__ import annotations

__all__: list[str] = []
