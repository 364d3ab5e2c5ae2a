"""Windows with context: how the audio decoders run a long input in bounded memory.

A decoder whose output at one frame depends only on the inputs within ``ctx`` frames of it can run
an input of ``n`` frames ``step`` at a time, each window read with ``ctx`` frames of real context
each side, and keep only its middle: the joined pieces equal one whole run (within float rounding).
:func:`context_windows` gives those windows; Griffin-Lim (:func:`mmtok.audio.griffin_lim.griffin_lim`),
the learned vocoder (:meth:`mmtok.audio.vocoder.Vocoder.decode`) and the log-mel decoder
(:meth:`mmtok.audio.tokenizer.AudioTokenizer.decode_features`) all run through it.

>>> list(context_windows(10, 4, 1))
[(0, 4, 0, 5), (4, 8, 3, 9), (8, 10, 7, 10)]
>>> list(context_windows(10, 4, 1, even=True))  # as many windows, sharing the frames out evenly
[(0, 3, 0, 4), (3, 6, 2, 7), (6, 10, 5, 10)]
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["context_windows"]


def context_windows(n: int, step: int, ctx: int, *, even: bool = False) -> Iterator[tuple[int, int, int, int]]:
    """``(a, b, lo, hi)`` per window of ``n`` frames: the window keeps frames ``a:b`` (``step`` of them, the
    last fewer) of the run over ``lo:hi``, which adds up to ``ctx`` frames of context each side. With
    ``even`` the same ``ceil(n / step)`` windows share the frames out evenly instead: each keeps
    ``n // windows`` or one more, at most ``step`` and (with two or more windows) at least ``step // 2``,
    so no run is much shorter than the others and the runs add up to ``n`` frames and their context."""
    if step < 1 or ctx < 0:
        raise ValueError(f"step must be positive and ctx not negative, got {step} and {ctx}")
    windows = -(-n // step)
    for i in range(windows):
        a, b = (i * n // windows, (i + 1) * n // windows) if even else (i * step, min(n, (i + 1) * step))
        yield a, b, max(0, a - ctx), min(n, b + ctx)
