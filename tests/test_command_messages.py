"""What commands say matches what they did: a vocoder trainer given nothing to do says so, DNSMOS's original score
stands beside DNSMOS, and a tokenizer that fails on a document is a failure while running (exit 1)."""

from __future__ import annotations

import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError, DeviceError, DocumentFailedError, UsageError, exit_status
from mmtok.evaluate import _fmt_summary


def test_the_vocoder_trainer_given_nothing_to_do_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-tokenizer", "vocoder"]) == 2
    assert "nothing to do: give --out RUN to train" in capsys.readouterr().err


def test_the_original_dnsmos_stands_beside_dnsmos() -> None:
    line = _fmt_summary({"summary": "audio", "model": "audio", "files": 1, "stoi": 0.74, "pesq_wb": 1.12,
                         "dnsmos_ovrl": 2.94, "logmel_l1": 1.33, "original_dnsmos_ovrl": 2.9, "codes_used": 100,
                         "codebook_size": 5888, "tokens": 150, "usage": 0.66, "perplexity": 90.0})
    assert "DNSMOS OVRL 2.94 (original 2.90), log-mel L1 1.330;" in line


def test_exit_statuses() -> None:
    assert exit_status(DocumentFailedError("docs.jsonl:1: KeyError")) == 1
    assert exit_status(CorpusError("docs.jsonl: edited")) == 2 and exit_status(UsageError("--x")) == 2
    assert exit_status(DeviceError("no CUDA GPU")) == 1


def test_the_help_says_what_a_missing_device_exits_with(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "a device this machine lacks, such as --device cuda without a GPU, too" in capsys.readouterr().out.replace(
        "\n", " ").replace("  ", " ")
