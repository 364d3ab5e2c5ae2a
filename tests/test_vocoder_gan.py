"""The vocoder's adversarial training: the discriminators, their losses, and a resumable adversarial run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmtok.audio import vocoder_train
from mmtok.audio.discriminator import (
    PeriodDiscriminator,
    ResolutionDiscriminator,
    WaveDiscriminators,
    WaveGAN,
    feature_matching,
    random_crops,
)
from mmtok.core.adversary import hinge_g_loss
from tests.test_vocoder import TINY_ARGS, tiny_corpus, voiced

pytestmark = pytest.mark.usefixtures("one_thread")


def test_period_discriminator_sees_every_pth_sample_and_pads_odd_lengths() -> None:
    d = PeriodDiscriminator(5, channels=4)
    logits, feats = d(torch.randn(2, 1003))  # 1003 is not a multiple of 5: reflect-padded to 1005
    assert logits.shape[0] == 2 and logits.shape[1] == 1 and logits.shape[-1] == 5
    assert len(feats) == 5 and all(f.shape[-1] == 5 for f in feats)
    # a change in one sample reaches only its own column of the grid
    x = torch.randn(1, 1000)
    y = x.clone()
    y[0, 7] += 1.0  # column 7 % 5 = 2
    with torch.no_grad():
        diff = (d(x)[0] - d(y)[0]).abs().sum(dim=(0, 1, 2))
    assert diff[2] > 0 and float(diff[[0, 1, 3, 4]].sum()) == 0.0


def test_resolution_discriminator_reads_the_log_magnitude_stft() -> None:
    d = ResolutionDiscriminator(256, 64, channels=4)
    logits, feats = d(torch.randn(3, 1600))
    assert logits.shape[:2] == (3, 1) and len(feats) == 5
    # the log magnitude is blind to the sign of the waveform
    x = torch.randn(1, 1600)
    torch.testing.assert_close(d(x)[0], d(-x)[0])


def test_hinge_and_feature_matching_losses() -> None:
    assert hinge_g_loss(torch.full((4,), 2.0)).item() == 0.0
    assert hinge_g_loss(torch.zeros(4)).item() == pytest.approx(1.0)
    d = WaveDiscriminators(channels=4, periods=(2, 3), resolutions=((256, 64),))
    x = torch.randn(2, 1600)
    same = feature_matching(d(x), d(x))
    assert same.item() == 0.0
    other = feature_matching(d(x), d(0.5 * x + 0.1 * torch.randn_like(x)))
    assert 0.0 < other.item() < 10.0


def test_random_crops_take_the_same_window_of_real_and_fake() -> None:
    torch.manual_seed(0)
    real = torch.arange(20.0).repeat(3, 1) + torch.arange(3.0)[:, None] * 100
    fake = -real
    r, f = random_crops(real, fake, 6)
    assert r.shape == (3, 6) and torch.equal(r, -f)
    assert torch.equal(r[:, 1:] - r[:, :-1], torch.ones(3, 5))  # contiguous windows
    same_r, same_f = random_crops(real, fake, 50)  # longer than the segments: all of them
    assert same_r is real and same_f is fake


def test_the_generator_learns_from_the_discriminators() -> None:
    """A learnable gain on noise: the discriminators' terms push the fake towards the real signal's scale."""
    torch.manual_seed(0)
    gan = WaveGAN(weight=1.0, fm_weight=2.0, warmup=0, channels=4, lr=1e-3, periods=(2, 3),
                  resolutions=((256, 64),))
    assert gan.generator_scale(0) == 1.0
    gain = torch.nn.Parameter(torch.tensor(0.05))
    opt = torch.optim.Adam([gain], lr=0.02)
    real = torch.from_numpy(voiced(0.2)).repeat(4, 1)
    for step in range(60):
        fake = gain * real / real.std()
        term, figures = gan.generator_loss(real, fake, step)
        opt.zero_grad()
        term.backward()
        opt.step()
        gan.discriminator_step(real, fake, step)
        assert set(figures) == {"g_adv", "fm", "adv_scale"}
    assert float(gain.detach()) > 0.1, float(gain.detach())  # moved towards the real scale (std 1 here)
    for p in gan.disc.parameters():
        assert p.requires_grad  # frozen only inside the generator's pass


def test_schedule_holds_the_generator_back_until_the_discriminators_warm_up() -> None:
    gan = WaveGAN(weight=0.5, warmup=3, start=2, channels=4, periods=(2,), resolutions=())
    real, fake = torch.randn(2, 800), torch.randn(2, 800, requires_grad=True)
    term, figures = gan.generator_loss(real, fake, 4)
    assert term.item() == 0.0 and figures == {}
    assert gan.discriminator_step(real, fake, 1) == {}  # before start: the discriminators do not learn
    assert set(gan.discriminator_step(real, fake, 2)) == {"d_loss", "d_real", "d_fake"}
    term, figures = gan.generator_loss(real, fake, 5)
    assert figures["adv_scale"] == pytest.approx(1 / 3) and term.item() > 0


def adversarial_args(corpus: Path, cache: Path, run: Path) -> list[str]:
    return ["--corpus", str(corpus), "--cache", str(cache), "--out", str(run), "--batch-size", "2",
            "--segment-seconds", "0.25", "--log-every", "1", "--val-segments", "1", "--val-clips", "1",
            "--val-clip-seconds", "1", "--warmup", "1", "--no-progress", "--disc-weight", "1.0",
            "--disc-warmup", "1", "--disc-channels", "4", "--disc-seconds", "0.1", "--best-by", "stoi", *TINY_ARGS]


def test_adversarial_run_logs_its_terms_and_resumes_the_same_curve(tmp_path: Path) -> None:
    corpus, cache = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache"
    a, b = tmp_path / "a", tmp_path / "b"
    warm = ["--warmup", "2"]  # the 2 steps before the stop in warmup: the same rates whatever --steps the cosine ends at
    assert vocoder_train.main([*adversarial_args(corpus, cache, a), *warm, "--steps", "4", "--save-every", "4"]) == 0
    assert vocoder_train.main([*adversarial_args(corpus, cache, b), *warm, "--steps", "2", "--save-every", "2"]) == 0
    # resumed without the options: the run's own discriminator settings and --best-by are kept
    plain = ["--corpus", str(corpus), "--cache", str(cache), "--out", str(b), "--batch-size", "2",
             "--segment-seconds", "0.25", "--log-every", "1", "--val-segments", "1", "--val-clips", "1",
             "--val-clip-seconds", "1", "--warmup", "2", "--no-progress", "--steps", "4", "--save-every", "2",
             "--resume", *TINY_ARGS]
    assert vocoder_train.main(plain) == 0

    def log(run: Path) -> list[dict[str, float]]:
        return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]

    rows = log(a)
    assert "d_loss" in rows[0] and "g_adv" not in rows[0]  # step 1: the discriminators alone
    assert {"g_adv", "fm", "d_loss"} <= set(rows[-1])
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in log(b)], rel=1e-4)
    assert [r["d_loss"] for r in rows] == pytest.approx([r["d_loss"] for r in log(b)], rel=1e-4)
    prov = json.loads((a / "model" / "config.json").read_text())["provenance"]
    assert prov["discriminator"]["weight"] == 1.0 and prov["best_by"] == "stoi"
    assert (a / "best" / "config.json").is_file()
    # the discriminators never ship: the vocoder checkpoint holds the vocoder's tensors only
    shipped = json.loads((a / "model" / "config.json").read_text())
    assert "disc" not in json.dumps(shipped.get("config", {}))


def test_bad_adversarial_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, cache = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache"
    args = adversarial_args(corpus, cache, tmp_path / "run")
    assert vocoder_train.main([*args, "--steps", "1", "--disc-lr", "0"]) == 2
    assert "--disc-lr > 0" in capsys.readouterr().err
    assert vocoder_train.main([*args, "--steps", "1", "--disc-seconds", "0.01"]) == 2
    assert "at least 1024 samples" in capsys.readouterr().err
    args = [a for a in args if a != "stoi"]
    args[args.index("--best-by") + 1:args.index("--best-by") + 1] = ["pesq_wb"]
    args[args.index("--val-clips") + 1] = "0"
    assert vocoder_train.main([*args, "--steps", "1"]) == 2
    assert "--best-by pesq_wb needs validation clips" in capsys.readouterr().err
    assert not (tmp_path / "run" / "train-state").exists()
