"""Interleaver's first argument is the vocabulary: a text tokenizer given there is told where it goes."""

from __future__ import annotations

import pytest

from mmtok import Interleaver
from mmtok.stream.text import ByteTokenizer


def test_a_text_tokenizer_in_the_vocabulary_place_is_told_where_it_goes() -> None:
    with pytest.raises(TypeError, match=r"first argument is the Vocabulary, or None .* got ByteTokenizer \(a text "
                                        r"tokenizer goes as text=\.\.\.: Interleaver\(None, text=tokenizer\)\)"):
        Interleaver(ByteTokenizer())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got int$"):
        Interleaver(3)  # type: ignore[arg-type]
    assert Interleaver(None, text=ByteTokenizer()).vocab.text_size == 256
