"""Windows with context: how the audio decoders run a long input in bounded memory.

A decoder whose output at one frame depends only on the inputs within ``ctx`` frames of it can run
an input of ``n`` frames ``step`` at a time, each window read with ``ctx`` frames of real context
each side, and keep only its middle: the joined pieces equal one whole run (within float rounding).
:func:`context_windows` gives those windows; Griffin-Lim (:func:`mmtok.audio.griffin_lim.griffin_lim`),
the learned vocoder (:meth:`mmtok.audio.vocoder.Vocoder.decode`) and the log-mel decoder
(:meth:`mmtok.audio.tokenizer.AudioTokenizer.decode_features`) all run through it.

>>> list(context_windows(10, 4, 1))
[(0, 4, 0, 5), (4, 8, 3, 9), (8, 10, 7, 10)]
>>> list(context_windows(10, 4, 1, full=True))  # the last window as long as the others
[(0, 4, 0, 5), (4, 8, 3, 9), (8, 10, 5, 10)]
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["context_windows"]


def context_windows(n: int, step: int, ctx: int, *, full: bool = False) -> Iterator[tuple[int, int, int, int]]:
    """``(a, b, lo, hi)`` per window of ``n`` frames: the window keeps frames ``a:b`` (``step`` of them, the
    last fewer) of the run over ``lo:hi``, which adds up to ``ctx`` frames of context each side. With
    ``full`` the last window starts early enough to be ``step`` frames long too (when ``n`` allows), so
    every run has the length the others have."""
    if step < 1 or ctx < 0:
        raise ValueError(f"step must be positive and ctx not negative, got {step} and {ctx}")
    for a in range(0, n, step):
        b = min(n, a + step)
        start = max(0, min(a, n - step)) if full else a
        yield a, b, max(0, start - ctx), min(n, b + ctx)
