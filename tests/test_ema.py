"""The weight average of :mod:`mmtok.core.ema`."""

from __future__ import annotations

import pytest
import torch

from mmtok.core.ema import PREFIX, WeightAverage
from mmtok.core.errors import CheckpointError


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    net[2].bias.requires_grad_(False)  # frozen: not averaged
    return net


def test_average_follows_its_formula_skips_frozen_and_buffers_and_swaps_back_on_error() -> None:
    net = _net()
    avg = WeightAverage(net, decay=0.9)
    assert set(avg.shadow) == {"0.weight", "0.bias", "1.weight", "1.bias", "2.weight"}
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    avg.update(net)
    for n, t in avg.shadow.items():
        assert torch.allclose(t, start[n] + 0.1)
    with pytest.raises(RuntimeError, match="boom"), avg.swapped_in(net):
        assert torch.allclose(net[0].weight, start["0.weight"] + 0.1)
        assert torch.equal(net[2].bias, start["2.bias"] + 1.0)  # frozen: the live value
        raise RuntimeError("boom")
    assert torch.equal(net[0].weight, start["0.weight"] + 1.0)  # live weights back after the error
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def test_state_round_trips_and_a_wrong_state_is_refused_by_name() -> None:
    net = _net()
    avg = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    avg.update(net)
    other = WeightAverage(_net(), decay=0.5)
    other.load_state_tensors({**avg.state_tensors(), "optim.x": torch.zeros(1)}, where="RUN")
    assert all(torch.equal(other.shadow[n], t) for n, t in avg.shadow.items())
    with pytest.raises(CheckpointError, match="RUN: this training state has no weight average"):
        other.load_state_tensors({"optim.x": torch.zeros(1)}, where="RUN")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        other.load_state_tensors({PREFIX + "0.weight": torch.zeros(4, 3)}, where="RUN")
    bad = {**avg.state_tensors(), PREFIX + "0.weight": torch.zeros(2, 2)}
    with pytest.raises(CheckpointError, match=r"the saved average of 0.weight is \(2, 2\)"):
        other.load_state_tensors(bad, where="RUN")
