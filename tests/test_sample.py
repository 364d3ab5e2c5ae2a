"""Constrained sampling: whatever an untrained model samples decodes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mmtok.core.errors import ContextTooShortError, UsageError
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import generate
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary


@pytest.fixture(scope="module")
def setup() -> tuple[Transformer, Interleaver]:
    vocab = Vocabulary(256, ranges={"image": 64, "audio": 32})
    il = Interleaver(vocab)
    torch.manual_seed(0)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=vocab.size, rope_3d=True), max_seq_len=256)
    return Transformer(cfg).eval(), il


def test_forced_image_always_decodes(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    samples = generate(model, il, "a red circle", force="image", num_samples=6, seed=1, image_grid=(4, 5))
    for ids in samples:
        segs = il.decode(ids, partial=True)  # strict: raises on any malformed stream
        assert segs[0]["text"] == "a red circle"
        assert segs[-1]["image_codes"].shape == (4, 5)


def test_forced_audio_always_decodes(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    for ids in generate(model, il, "a tone", force="audio", num_samples=6, seed=2, audio_tokens=(3, 20)):
        codes = il.decode(ids, partial=True)[-1]["audio_codes"]
        assert 3 <= codes.numel() <= 20


def test_free_running_streams_decode_and_positions_match(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    n_media = 0
    samples = generate(model, il, "x", max_new_tokens=120, num_samples=12, seed=3, image_grid=(2, 3),
                       audio_tokens=(1, 6), temperature=1.5)
    for ids in samples:
        segs = il.decode(ids, partial=True)  # strict: valid UTF-8 text, well-formed media, even when cut short
        n_media += sum("text" not in s for s in segs)
        if ids[-1] == il.EOS:  # a finished document re-encodes to the very same ids
            assert torch.equal(il.encode(segs).ids, ids)
    assert n_media > 0


def test_greedy_is_deterministic(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    a = generate(model, il, "hi", force="image", temperature=0, image_grid=(3, 3))
    b = generate(model, il, "hi", force="image", temperature=0, image_grid=(3, 3))
    assert torch.equal(a[0], b[0])


def test_prompt_too_long_for_forced_image(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    with pytest.raises(ValueError, match="needs"):
        generate(model, il, "z" * 200, force="image", image_grid=(16, 16))
    # audio needs only its fewest codes: the grammar closes the segment when the context runs out
    (ids,) = generate(model, il, "z" * 200, force="audio", audio_tokens=(8, 250), seed=0)
    seg = il.decode(ids, partial=True)[-1]
    assert len(ids) <= model.cfg.max_seq_len and 8 <= seg["audio_codes"].numel() <= 256 - 200 - 2
    with pytest.raises(ContextTooShortError, match="at least 60 codes after the 201-token prompt needs 263 tokens") as e:
        generate(model, il, "z" * 200, force="audio", audio_tokens=(60, 250))
    assert "\n" not in str(e.value) and "--audio-tokens" in str(e.value) and "--seq-len 320" in str(e.value)
    with pytest.raises(ContextTooShortError, match="--image-grid"):
        generate(model, il, "z" * 200, force="image")
    with pytest.raises(ContextTooShortError, match="the prompt is 301 tokens"):
        generate(model, il, "z" * 300)


def test_grammar_positions_equal_the_interleavers(setup: tuple[Transformer, Interleaver]) -> None:
    from mmtok.lm.grammar import Grammar

    _, il = setup
    doc = ["hé ", {"image_codes": torch.arange(6).view(2, 3)}, "ok", {"audio_codes": torch.arange(4)}, "!"]
    stream = il.encode(doc)
    g = Grammar(il, image_grid=(2, 3), audio_tokens=(1, 6))
    state = g.start(1)  # after <bos>
    for i in range(1, len(stream)):
        tok = int(stream.ids[i])
        assert bool(g.allowed(state)[tok]), i
        assert g.position(state) == tuple(stream.pos_thw[i].tolist()), i
        g.advance(state, tok)


def test_sample_command_writes_png_and_wav(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import soundfile as sf
    from PIL import Image

    from mmtok.cli import main
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.tokenizer_spec import TokenizerSpec
    from mmtok.lm.train import TrainConfig, train
    from mmtok.synth.toy import color_shapes_corpus, tones_corpus

    folder = tmp_path / "corpus"
    lines = (color_shapes_corpus(folder, n_docs=8, seed=0).read_text()
             + tones_corpus(folder, n_docs=8, seed=0).read_text())
    (folder / "all.jsonl").write_text(lines)
    spec = TokenizerSpec(image="mmtok.pretrained:native_image_tokenizer", audio="tests.test_interleave:LoudnessAudio")
    tokenize_corpus(folder / "all.jsonl", tmp_path / "shards", tokenizers=spec)
    train(TrainConfig(data=str(tmp_path / "shards"), out=str(tmp_path / "run"), seq_len=64, batch_size=4, steps=2,
                      warmup=1, save_every=2), progress=False)
    png, wav = tmp_path / "a.png", tmp_path / "a.wav"
    run = str(tmp_path / "run")
    # the run's settings name a module:callable audio tokenizer: never imported from a file ...
    assert main(["sample", "--run", run, "--prompt", "a", "--max-new-tokens", "2"]) == 2
    assert "pass it explicitly" in capsys.readouterr().err
    # ... only when the command line names it
    run, audio = str(tmp_path / "run"), ["--audio", "tests.test_interleave:LoudnessAudio"]
    assert main(["sample", "--run", run, *audio, "--prompt", "a circle in red", "--image-out", str(png),
                 "--image-grid", "4x4", "--seed", "0"]) == 0
    assert Image.open(png).size == (64, 64)
    assert main(["sample", "--run", run, *audio, "--prompt", "a high tone", "--audio-out", str(wav), "--seed", "1"]) == 0
    assert sf.info(str(wav)).frames > 0 and sf.info(str(wav)).samplerate == 16000
    assert main(["sample", "--run", run, *audio, "--prompt", "a", "--max-new-tokens", "20", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {png}" in out and f"wrote {wav}" in out and "a circle in red[image 4×4]" in out
    with pytest.raises(SystemExit) as e:
        main(["sample", "--run", run, "--image-out", str(png), "--audio-out", str(wav)])
    assert e.value.code == 2
    jpg = tmp_path / "a.jpg"  # an extension Pillow knows: that format, not PNG bytes under another name
    assert main(["sample", "--run", run, *audio, "--prompt", "a", "--image-out", str(jpg), "--image-grid", "4x4"]) == 0
    assert Image.open(jpg).format == "JPEG"
    capsys.readouterr()
    for bad, why in ((["--image-grid", "0x4", "--image-out", str(png)], "--image-grid needs"),
                     (["--audio-tokens", "5,2", "--audio-out", str(wav)], "--audio-tokens MIN,MAX needs"),
                     (["--audio-tokens", "0,0", "--audio-out", str(wav)], "--audio-tokens MIN,MAX needs"),
                     (["--device", "banana"], "--device 'banana' is not a device")):
        with pytest.raises(SystemExit) as e:
            main(["sample", "--run", run, *audio, *bad])
        assert e.value.code == 2 and why in capsys.readouterr().err
    for bad, why in ((["--image-out", str(tmp_path)], "is a folder"),
                     (["--audio-out", str(tmp_path / "a.mp3")], "cannot write .mp3 as 16-bit PCM; write .wav, .flac"),
                     (["--image-out", str(tmp_path / "nodir" / "x.png")], "does not exist")):
        assert main(["sample", "--run", run, *audio, *bad]) == 2
        assert why in capsys.readouterr().err


class _Grid:  # a GridTokenizer: 8 codes on a 2×3 grid
    codebook_size = 8
    grid = (2, 3)
    fingerprint = "grid-v1"

    def encode(self, x):  # type: ignore[no-untyped-def]
        return torch.zeros(self.grid, dtype=torch.long)

    def decode(self, codes):  # type: ignore[no-untyped-def]
        return codes.float()


class _Rate:  # a RateTokenizer: 2 codes per second
    codebook_size = 4
    sample_rate = 100
    tokens_per_second = 2
    fingerprint = "rate-v1"

    def encode(self, x):  # type: ignore[no-untyped-def]
        return torch.zeros(2, dtype=torch.long)

    def decode(self, codes):  # type: ignore[no-untyped-def]
        return codes.float()


def test_default_grid_and_audio_length_come_from_the_tokenizers() -> None:
    from mmtok.lm.sample import DEFAULT_AUDIO_SECONDS, audio_tokens_of, image_grid_of

    assert image_grid_of(_Grid()) == (2, 3) and image_grid_of(_Rate()) == (16, 16) and image_grid_of(None) == (16, 16)
    assert audio_tokens_of(_Rate()) == (1, 2 * DEFAULT_AUDIO_SECONDS) and audio_tokens_of(_Grid()) == (1, 250)
    il = Interleaver(None, image=_Grid(), audio=_Rate())
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("tiny", vocab_size=il.vocab.size, max_seq_len=256)).eval()
    for ids in generate(model, il, "x", force="image", num_samples=3, seed=0):
        assert il.decode(ids, partial=True)[-1]["image_codes"].shape == (2, 3)
    lengths = [il.decode(ids, partial=True)[-1]["audio_codes"].numel()
               for ids in generate(model, il, "x", force="audio", num_samples=16, seed=0, temperature=2.0)]
    assert max(lengths) <= 2 * DEFAULT_AUDIO_SECONDS and min(lengths) >= 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": -1.0}, "temperature must be a finite number"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"top_k": 0}, "top_k must be ≥ 1"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"max_new_tokens": -1}, "max_new_tokens must be ≥ 0"),
    ({"num_samples": 0}, "num_samples must be ≥ 1"),
])
def test_bad_sampling_settings_are_clear_errors(setup: tuple[Transformer, Interleaver], kwargs: dict,
                                                match: str) -> None:
    model, il = setup
    with pytest.raises(ValueError, match=match):
        generate(model, il, "a", **kwargs)


def test_greedy_decoding_is_temperature_zero(setup: tuple[Transformer, Interleaver]) -> None:
    model, il = setup
    a = generate(model, il, "a", max_new_tokens=8, temperature=0.0, seed=1)[0]
    b = generate(model, il, "a", max_new_tokens=8, temperature=0.0, seed=2)[0]
    assert torch.equal(a, b)  # no randomness at temperature 0


def test_sample_run_checks_the_output_folder_before_loading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmtok.lm.sample import sample_run

    with pytest.raises(UsageError, match="does not exist"):
        sample_run(tmp_path / "no-run", "a", image_out=tmp_path / "missing" / "x.png")


def test_a_medium_the_vocabulary_lacks_is_refused_in_one_line() -> None:
    il = Interleaver(Vocabulary(256))  # text only
    model = Transformer(replace(ModelConfig.preset("tiny", vocab_size=il.vocab.size), max_seq_len=64)).eval()
    for force in ("image", "audio"):
        with pytest.raises(UsageError, match=f"vocabulary has no {force} codes"):
            generate(model, il, "a", force=force)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_sample_run_on_a_missing_gpu_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmtok.core.errors import DeviceError
    from mmtok.lm.sample import sample_run

    with pytest.raises(DeviceError, match="no CUDA GPU here; use --device cpu"):
        sample_run(tmp_path / "run", "a", device="cuda")


def test_a_stream_without_eos_is_never_sampled_an_eos() -> None:
    from mmtok.lm.grammar import Grammar

    vocab = Vocabulary(256, ranges={"image": 64, "audio": 32})
    for eos in (True, False):
        il = Interleaver(vocab, eos=eos)
        g = Grammar(il, image_grid=(2, 3), audio_tokens=(1, 6))
        assert bool(g.allowed(g.start(1))[il.EOS]) is eos  # strict decode refuses <eos> from Interleaver(eos=False)
