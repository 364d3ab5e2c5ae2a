"""The size policies live in :mod:`mmtok.image.sizing` (their torch-free numbers in :mod:`mmtok.image.sizes`), below
:mod:`mmtok.image.io`, which reads files."""

from __future__ import annotations

import ast
import inspect

import torch

from mmtok.image import io as image_io
from mmtok.image import sizes, sizing
from mmtok.image.io import load_sized
from mmtok.image.sizes import MAX_SIDE, working_size
from mmtok.image.sizing import apply_size_policy

MOVED = {"MAX_SIDE", "SIZE_POLICIES", "apply_size_policy", "crop_first", "crop_window", "patchify", "unpatchify",
         "working_size", "_resize", "_pad_to", "_crop_geometry"}


def _defined(module: object) -> set[str]:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return names | {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def test_io_reads_and_sizing_sizes() -> None:
    assert MOVED <= _defined(sizing) | _defined(sizes) and not MOVED & _defined(image_io)
    assert len(inspect.getsource(image_io).splitlines()) <= 500
    imported = {n.module for n in ast.walk(ast.parse(inspect.getsource(sizing))) if isinstance(n, ast.ImportFrom)}
    assert "mmtok.image.io" not in imported  # sizing stands below io: no cycle


def test_the_working_size_keeps_small_images_and_reduces_long_ones() -> None:
    assert working_size(640, 480) == (640, 480) and working_size(MAX_SIDE, 3) == (MAX_SIDE, 3)
    assert working_size(7680, 4320) == (MAX_SIDE, 2304) and working_size(9000, 1) == (MAX_SIDE, 1)
    x = torch.empty(1, 3, 4320, 7680, device="meta")  # an 8K frame, shapes only
    assert apply_size_policy(x, policy="native", image_size=64, multiple=16).shape == (1, 3, 2304, 4096)
    arr = torch.rand(3, 20, 9000)
    assert load_sized(arr, policy="native", image_size=64, multiple=16).shape == (1, 3, 16, MAX_SIDE)
