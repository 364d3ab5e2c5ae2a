"""The ``"mmtok"`` plan of a ``"native"`` image tokenizer counts an 8K frame at the size the tokenizer reads it."""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.context.shipped import plan
from mmtok.core.checkpoint import save_checkpoint
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.sizing import apply_size_policy


def test_an_8k_frame_is_counted_at_the_native_policys_working_size(tmp_path: Path) -> None:
    cfg = ImageTokenizerConfig(size_policy="native")
    image = save_checkpoint(tmp_path / "image", kind="image", tensors={}, config=cfg)
    seen = apply_size_policy(torch.empty(1, 3, 4320, 7680, device="meta"), policy="native",
                             image_size=cfg.image_size, multiple=cfg.downsample).shape[-2:]
    grid = (seen[0] // cfg.downsample, seen[1] // cfg.downsample)
    p = plan(1, preset="mmtok", image=image, audio=None, resolution=(4320, 7680))
    assert grid == (144, 256) and p.grid == grid and p.resolution == (2304, 4096)
    assert p.tokens_per_frame == grid[0] * grid[1] + grid[0] + 1  # codes, <eol> per row, <eof>
    assert "7680x4320 are counted at 4096x2304" in p.note
    small = plan(1, preset="mmtok", image=image, audio=None, resolution=(360, 640))
    assert small.grid == (23, 40) and small.resolution == (360, 640) and "counted at" not in small.note
