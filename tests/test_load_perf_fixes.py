"""Loading builds the module without random initialisation, since the checkpoint sets every weight: the
same weights and buffers as a build with it, torch.nn.init as it was afterwards (a failed load too), other
threads untouched; NaN/inf in the weights is found with one reduction per tensor and still named."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import mmtok
import mmtok.core.module_io as module_io
from mmtok.core.errors import CheckpointError
from mmtok.core.module_io import building_on_meta, load_module, save_module, weights_from_checkpoint
from mmtok.core.protocol import module_fingerprint
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")

INITS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "zeros_", "ones_", "constant_")


def counting(name: str, real: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    def init(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(tensor, *args, **kwargs)
    return init


def inits_now() -> dict[str, Any]:
    return {name: getattr(torch.nn.init, name) for name in module_io._INIT_FUNCTIONS}


@pytest.mark.parametrize("name", ["image", "audio", "video"])
def test_a_load_without_random_init_has_every_weight_and_buffer_of_one_with_it(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = mmtok.load(name)
    with monkeypatch.context() as m:
        m.setattr(module_io, "weights_from_checkpoint", contextlib.nullcontext)
        plain = mmtok.load(name)
    for got, want in ((fast.state_dict(), plain.state_dict()),
                      (dict(fast.named_buffers()), dict(plain.named_buffers()))):  # filters, windows, counts too
        assert list(got) == list(want)
        for key, value in want.items():
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
    assert module_fingerprint(fast) == module_fingerprint(plain)


@pytest.mark.parametrize("name", ["image", "audio", "video"])
def test_loading_runs_no_initialiser_and_leaves_torch_nn_init_as_it_was(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    ours = {fn: counting(fn, getattr(torch.nn.init, fn), calls) for fn in INITS}
    for fn, init in ours.items():
        monkeypatch.setattr(torch.nn.init, fn, init)
    mmtok.load(name)
    assert calls == []  # before: thousands of kaiming_uniform_/trunc_normal_/... calls, all overwritten
    assert all(getattr(torch.nn.init, fn) is init for fn, init in ours.items())
    nn.Linear(3, 3)
    assert calls == ["kaiming_uniform_", "uniform_"]  # outside a load, modules initialise as always


@dataclass
class FlakyConfig:
    width: int = 4  # features of its one layer


class Flaky(nn.Module):
    """A module whose real build fails (its meta build, for the shape check, does not)."""

    KIND = "test-flaky"
    CONFIG_CLASS = FlakyConfig
    fail = False
    seen: ClassVar[dict[str, float]] = {}

    def __init__(self, cfg: FlakyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer = nn.Linear(cfg.width, cfg.width)
        if building_on_meta():
            return
        other: list[float] = []  # what an initialiser does in another thread meanwhile
        thread = threading.Thread(target=lambda: other.append(nn.init.zeros_(torch.ones(1)).item()))
        thread.start()
        thread.join()
        Flaky.seen = {"here": nn.init.zeros_(torch.ones(1)).item(), "other thread": other[0]}
        if Flaky.fail:
            raise RuntimeError("the constructor failed")


def test_a_failing_load_puts_torch_nn_init_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Flaky(FlakyConfig())
    folder = save_module(source, tmp_path / "flaky")
    before = inits_now()
    monkeypatch.setattr(Flaky, "fail", True)
    with pytest.raises(CheckpointError, match=r"cannot build Flaky from config\.json: RuntimeError: the constructor"):
        load_module(Flaky, folder)
    assert Flaky.seen == {"here": 1.0, "other thread": 0.0}  # skipped in the loading thread only
    after = inits_now()
    assert all(after[name] is before[name] for name in before)
    monkeypatch.setattr(Flaky, "fail", False)
    again = load_module(Flaky, folder)
    assert inits_now() == before
    assert torch.equal(again.layer.weight, source.layer.weight) and torch.equal(again.layer.bias, source.layer.bias)


def test_blocks_in_two_threads_overlap_and_torch_nn_init_comes_back() -> None:
    zeros_ = torch.nn.init.zeros_
    entered, leave = threading.Event(), threading.Event()
    seen: ClassVar[dict[str, float]] = {}

    def other() -> None:
        with weights_from_checkpoint():
            entered.set()
            leave.wait(10)
            seen["other, inside"] = torch.nn.init.zeros_(torch.ones(1)).item()

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with weights_from_checkpoint(), weights_from_checkpoint():  # nested too
        seen["main, inside"] = torch.nn.init.zeros_(torch.ones(1)).item()
    seen["main, after"] = torch.nn.init.zeros_(torch.ones(1)).item()  # while the other thread is still inside
    leave.set()
    thread.join(10)
    assert seen == {"main, inside": 1.0, "main, after": 0.0, "other, inside": 1.0}
    assert torch.nn.init.zeros_ is zeros_


def saved_vq(tmp_path: Path, fill: Callable[[VectorQuantizer], None]) -> Path:
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
    with torch.no_grad():
        fill(vq)
    return save_module(vq, tmp_path / "vq")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_weight_is_still_named(tmp_path: Path, bad: float) -> None:
    def fill(vq: VectorQuantizer) -> None:
        vq.embed.fill_(3e38)  # finite, but their sums overflow: the reduction alone would call them non-finite
        vq.ema_count.fill_(3e38)
        vq.ema_sum[5, 2] = bad

    with pytest.raises(CheckpointError, match=r"tensor 'ema_sum' holds 1 NaN/inf value\(s\)"):
        load_module(VectorQuantizer, saved_vq(tmp_path, fill))


def test_huge_finite_weights_load(tmp_path: Path) -> None:
    vq = load_module(VectorQuantizer, saved_vq(tmp_path, lambda vq: vq.embed.fill_(3e38)))
    assert bool((vq.embed == 3e38).all())


def test_finite_weights_are_checked_with_one_reduction_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = saved_vq(tmp_path, lambda vq: vq.embed.normal_())
    shapes: list[tuple[int, ...]] = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: shapes.append(tuple(t.shape)) or real(t))
    load_module(VectorQuantizer, folder)
    assert shapes and all(s == () for s in shapes)  # not an element-wise pass over every weight
