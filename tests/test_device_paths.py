"""The CUDA paths on a CPU-only machine: timers wait for the device a step runs on (``cuda:1``, not the current
one), the CUDA random states come back to the right GPU on resume (by index; under torchrun every rank's own GPU
gets the stream rank 0's GPU drew), scores of a tokenizer on a GPU are taken on the CPU, and ``--device mps`` is
refused in one line by every command.

No GPU is needed: torch's CUDA calls are replaced for the test by ones that record their arguments, and a tensor
"on the GPU" is :class:`OnGpu`, which, as a CUDA tensor, refuses any op with a CPU tensor until ``.cpu()``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._pytree import tree_flatten

from mmtok.core.checkpoint import read_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CUDA1 = torch.device("cuda", 1)
RECORDED = ("synchronize", "get_device_name", "max_memory_allocated", "reset_peak_memory_stats", "mem_get_info",
            "memory_allocated")  # what the fixture two_gpus records
DEVICE_CALLS = (*RECORDED, "get_device_properties", "get_device_capability")  # each reads one device


class OnGpu(torch.Tensor):
    """A tensor as a CUDA one behaves beside CPU tensors: an op with one of more than 0 dimensions raises
    "Expected all tensors to be on the same device"; ``.cpu()`` copies it to a plain tensor."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.Tensor.cpu:
            with torch._C.DisableTorchFunctionSubclass():
                return args[0].clone()
        if any(type(t) is torch.Tensor and t.dim() > 0 for t in tree_flatten((args, kwargs or {}))[0]):
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                               "cuda:1 and cpu!")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple]]:
    """torch sees two GPUs, the current one cuda:0; every call of :data:`RECORDED` is recorded with its
    arguments (and answers as a GPU would)."""
    calls: list[tuple[str, tuple]] = []
    answers = {"get_device_name": "NVIDIA H200", "mem_get_info": (100 << 30, 140 << 30), "memory_allocated": 0,
               "max_memory_allocated": 0}
    for name in RECORDED:
        monkeypatch.setattr(torch.cuda, name, lambda *a, _n=name, **k: calls.append((_n, a)) or answers.get(_n))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return calls


def test_measure_step_waits_for_the_device_it_runs_on(two_gpus: list, monkeypatch: pytest.MonkeyPatch) -> None:
    # it called torch.cuda.synchronize() with no device: the current one, cuda:0, while the step ran on cuda:1
    from mmtok.context.growth import measure_step

    to_tensor, to_module = torch.Tensor.to, torch.nn.Module.to

    def on_cpu(args: tuple) -> tuple:  # the weights and ids "on cuda:1" stay on the CPU
        return tuple("cpu" if isinstance(a, (str, torch.device)) and torch.device(a).type == "cuda" else a
                     for a in args)

    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: to_tensor(self, *on_cpu(a), **k))
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: to_module(self, *on_cpu(a), **k))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda *a: torch.zeros(16, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    row = measure_step("tiny", "math", torch.randint(0, 64, (9,)), 64, device="cuda:1")
    assert row["seconds"] > 0
    syncs = [args for name, args in two_gpus if name == "synchronize"]
    assert syncs and all(args == (CUDA1,) for args in syncs), two_gpus


def test_benchmark_timers_and_machine_rows_use_the_device_they_measure(
        two_gpus: list, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import gpu_media
    import train as bench_train
    import vq as bench_vq

    bench_vq.device_sync(CUDA1)()
    gpu_media.sync("cuda:1")
    assert bench_vq.device_sync(torch.device("cpu")) is None
    bench_train.run_rounds({"mmtok": lambda ids: 0.0}, torch.zeros(1), CUDA1, 1)
    assert two_gpus and set(two_gpus) == {("synchronize", (CUDA1,)), ("synchronize", ("cuda:1",))}
    two_gpus.clear()
    monkeypatch.setattr(bench_vq, "missing_peer", lambda module: "not installed")  # nothing to compare with here
    assert bench_vq.main(["--device", "cuda:1", "--skip-encode", "--skip-train"]) == 0
    assert two_gpus == [("get_device_name", (CUDA1,))]
    assert '"gpu": "NVIDIA H200"' in capsys.readouterr().out


def test_no_cuda_call_of_the_current_device_where_a_device_is_in_use() -> None:
    """Every call that reads or waits for one CUDA device names it (with no argument, or a literal index, it is
    the current one or GPU 0, not the device given with ``--device cuda:1``), and no timer hands the bare
    ``torch.cuda.synchronize`` on to be called without one."""
    calls = "|".join(DEVICE_CALLS)
    bare = re.compile(rf"torch\.cuda\.({calls})\(\s*(\d+\s*)?\)|torch\.cuda\.synchronize\b(?!\()")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for folder in ("mmtok", "benchmarks", "examples") for path in sorted((ROOT / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if bare.search(line) and not line.lstrip().startswith("#")]
    assert not found, "\n".join(found)


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, *, first_state: int) -> dict[int, int]:
    """``count`` GPUs as torch.cuda sees them, GPU i's random state filled with ``first_state + i``; what is
    restored to each GPU comes back in the dict returned (GPU -> its state's fill)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.full((16,), first_state + i, dtype=torch.uint8)
                                                                  for i in range(count)])
    restored: dict[int, int] = {}

    def set_state(state: torch.Tensor, device: int = 0) -> None:
        restored[device] = int(state[0])

    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: [set_state(s, i) for i, s in enumerate(states)])
    return restored


def test_cuda_random_states_come_back_by_device_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # restored in the sorted order of their names, rng.cuda.10 before rng.cuda.2: GPU 2 got GPU 10's state
    from mmtok.core import trainstate

    restored = _fake_gpus(monkeypatch, 12, first_state=0)
    model = torch.nn.Linear(2, 2)
    folder = trainstate.save_train_state(tmp_path / "state", kind="demo", config={}, model=model, optimizer=None,
                                         step=1)
    trainstate.load_train_state(folder, model=model)
    assert restored == {i: i for i in range(12)}


def test_each_rank_continues_the_cuda_stream_of_the_gpu_the_run_was_saved_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun only rank 0 saves (every GPU's state its process holds); rank 3's GPU got the state GPU 3 had
    in rank 0's process (seeded, never drawn from), not the one rank 0's GPU drew from, as rank 3's own would have
    (every rank seeds and draws alike). One process resumed on another GPU goes on with the state it saved."""
    from mmtok.core import trainstate

    restored = _fake_gpus(monkeypatch, 4, first_state=10)
    model = torch.nn.Linear(2, 2)
    assert trainstate.model_cuda_index(model) is None  # on the CPU
    monkeypatch.setattr(trainstate, "model_cuda_index", lambda m: 0)  # rank 0 saves, its model on cuda:0
    folder = trainstate.save_train_state(tmp_path / "state", kind="demo", config={}, model=model, optimizer=None,
                                         step=1)
    assert read_config(folder)["train"]["rng_cuda_device"] == 0
    monkeypatch.setattr(trainstate, "model_cuda_index", lambda m: 3)  # rank 3 resumes, its model on cuda:3
    trainstate.load_train_state(folder, model=model)
    assert restored[3] == 10 and {i: restored[i] for i in range(3)} == {0: 10, 1: 11, 2: 12}
    side = {f"rng.cuda.{i}": torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(4)}
    restored.clear()
    trainstate.restore_cuda_rng(side, saved_on=2, now_on=2)  # one process on cuda:2, resumed there
    assert restored == {0: 10, 1: 11, 2: 12, 3: 13}
    restored.clear()
    trainstate.restore_cuda_rng(side, saved_on=1, now_on=0)  # ... saved on cuda:1, resumed on cuda:0
    assert restored == {0: 11, 1: 11, 2: 12, 3: 13}
    restored.clear()
    trainstate.restore_cuda_rng(side, saved_on=None, now_on=1)  # a checkpoint that recorded no GPU: by index
    assert restored == {0: 10, 1: 11, 2: 12, 3: 13}


class _ImageOnGpu:
    """An image tokenizer on a GPU: decodes come back on it (:class:`OnGpu`), ``preprocess`` on the CPU."""

    def __init__(self) -> None:
        self.picture = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))

    def encode(self, path: object) -> torch.Tensor:
        return torch.zeros(2, 2, dtype=torch.long)

    def preprocess(self, x: object) -> torch.Tensor:
        n = x.shape[0] if isinstance(x, torch.Tensor) else None
        return self.picture if n is None else self.picture.expand(n, -1, -1, -1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = (self.picture * 0.9).expand(*codes.shape[:-2], -1, -1, -1).contiguous()
        return out.as_subclass(OnGpu)


class _VideoOnGpu:
    def __init__(self) -> None:
        self.image = _ImageOnGpu()

    def encode(self, path: object) -> torch.Tensor:
        return torch.zeros(3, 2, 2, dtype=torch.long)

    def expand(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def frames(self, path: object) -> list[tuple[torch.Tensor, None]]:
        return [(torch.zeros(2, 3, 16, 16), None), (torch.zeros(1, 3, 16, 16), None)]


def test_image_and_video_scores_of_a_tokenizer_on_a_gpu(tmp_path: Path) -> None:
    # the decode on the GPU was scored against the CPU's preprocess: "Expected all tensors to be on the same device"
    from mmtok.core.metrics import psnr
    from mmtok.evaluate import score_image, score_video

    with pytest.raises(RuntimeError, match="same device"):  # what a GPU's decode does beside a CPU tensor
        psnr(_ImageOnGpu().decode(torch.zeros(2, 2))[None], torch.rand(1, 3, 16, 16))
    expected = float(psnr(_ImageOnGpu().picture * 0.9, _ImageOnGpu().picture))
    scores, _ = score_image(_ImageOnGpu(), tmp_path / "x.png")
    assert scores["psnr_db"] == pytest.approx(expected) and 0.9 < scores["ssim"] <= 1.0
    scores, _ = score_video(_VideoOnGpu(), tmp_path / "x.mp4")
    assert scores["frames"] == 3 and scores["psnr_db"] == pytest.approx(expected)


def test_vocoder_trainer_refuses_another_device_type_as_every_command_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # it raised DeviceError: exit status 1, "mmtok: error: device 'mps' is not one mmtok runs on: give cpu, ..."
    from mmtok.cli import main

    for flag, why in (("mps", "is not one mmtok runs on"), ("foo", "is not a device")):
        for name, options in (("train-tokenizer vocoder", ["--cache", str(tmp_path / "cache")]),
                              ("train", ["--data", str(tmp_path / "shards")])):
            with pytest.raises(SystemExit) as e:
                main([*name.split(), *options, "--out", str(tmp_path / "run"), "--device", flag])
            assert e.value.code == 2
            assert capsys.readouterr().err == (f"mmtok: error: {name}: --device {flag!r} {why} (cpu, cuda, cuda:1, "
                                               f"...); see 'mmtok {name} --help'\n")
    assert not (tmp_path / "run").exists()
