"""The front door: a default tiny run samples a whole image, a request too big for the context fails before it
starts with one line naming the flag, and the README's corpus example tokenizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmtok.cli import main
from mmtok.core.errors import ContextTooShortError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.lm import sample as sample_module
from mmtok.lm.model import (
    AUDIO_TOKENS,
    IMAGE_TOKENS,
    MEDIA_CONTEXT,
    PRESETS,
    PROMPT_TOKENS,
    ModelConfig,
)
from mmtok.lm.runs import load_run
from mmtok.lm.sample import sample_run, segment_cost
from mmtok.lm.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_every_preset_holds_a_prompt_an_image_and_a_second_of_sound() -> None:
    from mmtok.pretrained import load_config

    image, audio = load_config("image", kind="image"), load_config("audio", kind="audio")
    side = image.image_size // image.downsample
    assert IMAGE_TOKENS == segment_cost("image", (side, side), (1, 1)) == 274
    assert AUDIO_TOKENS == segment_cost("audio", (1, 1), (audio.sample_rate // audio.samples_per_token, 1)) == 52
    assert MEDIA_CONTEXT == PROMPT_TOKENS + IMAGE_TOKENS + AUDIO_TOKENS + 2  # <bos>, <eos>
    for name in PRESETS:
        assert ModelConfig.preset(name).max_seq_len >= MEDIA_CONTEXT, name
        # overrides are exact: whoever asks for a short context gets it
        assert ModelConfig.preset(name, max_seq_len=64).max_seq_len == 64
        assert ModelConfig.preset(name, max_seq_len=8192).max_seq_len == 8192


def test_mmtok_train_builds_at_least_the_presets_context(tmp_path: Path) -> None:
    """A short training window does not shrink the model's context; a longer one grows it."""

    folder = tmp_path
    docs = folder / "docs.jsonl"
    docs.write_text("".join(f'{{"segments": [{{"text": "some words to learn {i}"}}]}}\n' for i in range(40)))
    tokenize_corpus(docs, folder / "shards", tokenizers=TokenizerSpec(), progress=False)
    for seq_len, context in ((64, PRESETS["tiny"]["max_seq_len"]), (1024, 1024)):
        out = folder / f"run{seq_len}"
        train(TrainConfig(data=str(folder / "shards"), out=str(out), steps=1, batch_size=1, warmup=1,
                          seq_len=seq_len, save_every=1), progress=False)
        assert load_run(out)[0].cfg.max_seq_len == context


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained for a few steps with ``mmtok train``'s defaults (window 256) on the shipped image tokenizer."""
    folder = tmp_path_factory.mktemp("frontdoor")
    docs = folder / "docs.jsonl"
    pics = sorted((EXAMPLES / "data").glob("*.jpg"))
    docs.write_text("".join(f'{{"segments": [{{"text": "a photo: "}}, {{"image": "{p}"}}]}}\n' for p in pics))
    tokenize_corpus(docs, folder / "shards", tokenizers=TokenizerSpec(image="image"), progress=False,
                    allow_outside=True)  # the pictures live in examples/data, outside this folder
    cfg = TrainConfig(data=str(folder / "shards"), out=str(folder / "run"), steps=3, batch_size=2, warmup=1,
                      save_every=3, threads=2)
    assert cfg.preset == "tiny" and cfg.seq_len == 256  # the defaults of `mmtok train`
    return train(cfg, progress=False)


def test_a_default_tiny_run_samples_a_whole_image(run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model, _, _ = load_run(run)
    assert model.cfg.max_seq_len == PRESETS["tiny"]["max_seq_len"]  # trained on windows of 256
    out = sample_run(run, "a photo: ", image_out=tmp_path / "a.png", seed=0)
    with Image.open(tmp_path / "a.png") as im:
        assert im.format == "PNG" and im.size == (256, 256)
    assert out.files == (str(tmp_path / "a.png"),) and "[image 16×16]" in out.pretty
    assert main(["sample", "--run", str(run), "--prompt", "a photo: ", "--image-out", str(tmp_path / "b.png"),
                 "--seed", "1"]) == 0
    assert f"wrote {tmp_path / 'b.png'}" in capsys.readouterr().out
    Image.open(tmp_path / "b.png").verify()


def test_too_big_a_request_fails_before_sampling_with_one_line(run: Path, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("sampling started")

    monkeypatch.setattr(sample_module, "_sample", no_sampling)
    png = tmp_path / "big.png"
    with pytest.raises(ContextTooShortError, match=r"a 32×32 image .* needs 1,?\d+ tokens.*--image-grid"):
        sample_run(run, "a photo: ", image_out=png, image_grid=(32, 32))
    assert main(["sample", "--run", str(run), "--prompt", "a photo: ", "--image-out", str(png),
                 "--image-grid", "32x32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mmtok: error: a 32×32 image"), err
    assert "--image-grid" in err and "--seq-len 1088" in err, err
    assert main(["sample", "--run", str(run), "--audio-out", str(tmp_path / "a.wav"), "--audio-tokens",
                 "600,700"]) == 2
    err = capsys.readouterr().err.strip()  # this run's shards had no audio: its vocabulary cannot sample any
    assert "\n" not in err and "vocabulary has no audio codes" in err, err
    assert not png.exists() and not (tmp_path / "a.wav").exists()


def test_the_readme_corpus_example_tokenizes(tmp_path: Path) -> None:
    pytest.importorskip("av")
    docs = EXAMPLES / "docs.jsonl"
    m = tokenize_corpus(docs, tmp_path / "shards", progress=False,
                        tokenizers=TokenizerSpec(image="image", audio="audio", video="video"))
    assert m["docs"] == len(docs.read_text().splitlines()) and m["skipped"] == []
    assert min(m["tokens"][k] for k in ("text", "image", "audio", "video")) > 0
