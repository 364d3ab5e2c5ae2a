"""``pretty`` gives a sound under a tenth of a second in two digits (one code of 20 ms is not "0.0 s")."""

from __future__ import annotations

import torch

import mmtok


def test_short_sounds_keep_their_length_in_pretty() -> None:
    il = mmtok.Interleaver(None, audio=mmtok.load("audio"))
    said = [il.pretty(il.encode([{"audio_codes": torch.zeros(n, dtype=torch.long)}])) for n in (1, 4, 5, 160)]
    assert [s.strip() for s in said] == ["[audio 0.02 s]", "[audio 0.08 s]", "[audio 0.1 s]", "[audio 3.2 s]"]
