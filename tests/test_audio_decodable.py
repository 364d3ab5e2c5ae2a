"""An audio tokenizer run whose loss stays finite while its decoded log-mel grows past what float32 can hold
(a loss of 1e16 at ``--lr 1``) is stopped at that step, before it is saved, instead of exporting a model that
decodes to NaN audio; and Griffin-Lim inverts a log-mel far louder than any real clip to finite samples."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mmtok.core.divergence import EXP_LIMIT, LOG_POWER_LIMIT, check_decodable
from mmtok.core.errors import TrainingError
from tests.test_audio_train_cli import SMALL, _cli, _data

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_limits_are_where_exp_and_the_square_of_exp_overflow_float32() -> None:
    assert torch.tensor(EXP_LIMIT - 0.01).exp().isfinite()
    assert not torch.tensor(EXP_LIMIT + 0.01).exp().isfinite()
    assert torch.tensor(LOG_POWER_LIMIT - 0.01).exp().square().isfinite()
    assert not torch.tensor(LOG_POWER_LIMIT + 0.01).exp().square().isfinite()


@pytest.mark.parametrize("peak", [LOG_POWER_LIMIT, -1e12, float("nan"), float("inf")])
def test_features_at_or_past_the_limit_stop_the_run(peak: float, tmp_path: Path) -> None:
    feats = torch.zeros(2, 80, 10)
    feats[1, 3, 4] = peak
    with pytest.raises(TrainingError) as err:
        check_decodable(feats, step=7, lr=0.5, state_dir=tmp_path)
    said = str(err.value)
    assert said.startswith(f"decoded log-mel reached ±{abs(peak):.3g} at step 7, past ±44.4, where a power's square")
    assert said.endswith("nothing saved for it (newest state: none saved yet); lower --lr (0.5 in this run)")


def test_features_a_real_log_mel_holds_pass() -> None:
    check_decodable(torch.full((1, 80, 5), math.log(1e-5)), step=1, lr=1e-3)  # silence
    check_decodable(torch.full((1, 80, 5), 44.0), step=1, lr=1e-3)
    check_decodable(torch.zeros(0, 80, 5), step=1, lr=1e-3)


def test_a_run_at_lr_1_stops_before_saving_weights_that_decode_to_nan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mmtok

    run = tmp_path / "run"
    code, err = _cli(capsys, "--data", str(_data(tmp_path / "wav")), *SMALL, "--steps", "20", "--lr", "1",
                     "--out", str(run))
    assert code == 1  # before: exit 0, a finite loss of ~1e16 and a model/ that decoded to NaN
    assert "decoded log-mel reached " in err and "training diverged and stopped" in err
    assert "lower --lr (1 in this run)" in err
    assert not (run / "model").exists()
    state = run / "train-state"
    if state.exists():  # what it can resume from decodes to finite audio
        tok = mmtok.load(state)
        codes = torch.randint(0, tok.codebook_size, (12,), generator=torch.Generator().manual_seed(0))
        assert bool(torch.isfinite(torch.as_tensor(tok.decode(codes))).all())


@pytest.mark.parametrize("top", [20.0, 44.0, 80.0])
def test_griffin_lim_inverts_a_log_mel_louder_than_any_clip_to_finite_samples(top: float) -> None:
    from mmtok.audio.features import mel_filters
    from mmtok.audio.griffin_lim import griffin_lim

    logmel = torch.linspace(-11.5, top, 80)[:, None].repeat(1, 12)
    wave = griffin_lim(logmel, mel_filters(), n_fft=1024, hop_length=160, n_iter=4)
    assert bool(wave.isfinite().all())  # before: NaN from 44 up (NNLS squared powers of e^44 and more)


def test_the_loudest_clips_stay_under_both_limits() -> None:
    """Full-scale square waves (the most power a clip in [-1, 1] puts in a band) and clipped noise: never
    rescaled by Griffin-Lim, and far inside the trainer's limit."""
    from mmtok.audio import griffin_lim as gl
    from mmtok.audio.features import log_mel, mel_filters

    t = torch.arange(16000) / 16000
    loud = torch.stack([torch.sign(torch.sin(2 * math.pi * f * t)) for f in (100.0, 1000.0, 4000.0)]
                       + [torch.randn(16000, generator=torch.Generator().manual_seed(1)).mul(10).clamp(-1, 1)])
    peak = float(log_mel(loud, mel_filters()).amax())
    assert 5 < peak < 10 < LOG_POWER_LIMIT and math.exp(peak) < gl.NNLS_SCALE_ABOVE
