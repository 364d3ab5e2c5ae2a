"""A ``package.module:callable`` tokenizer of another kind is refused in plain English (the class with its article)."""

from __future__ import annotations

import pytest

from mmtok.core.errors import CheckpointError
from mmtok.pretrained import load_tokenizer


def test_a_callable_of_another_kind_is_named_with_its_article() -> None:
    with pytest.raises(CheckpointError, match=r"gives an ImageTokenizer of kind 'image', not 'audio'$"):
        load_tokenizer("mmtok.pretrained:native_image_tokenizer", kind="audio")
