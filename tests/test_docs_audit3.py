"""Claims the examples and the model cards make, checked against the code."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

import mmtok
from mmtok.cli import build_parser
from mmtok.context.shipped import plan
from mmtok.info import describe

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"

# how each example names a file or folder it writes into the current folder
_WRITES = (
    r'\.save\(\s*"([^"]+)"',  # PIL images
    r'sf\.write\(\s*"([^"]+)"',  # sounds
    r'color_shapes_corpus\(\s*"([^"]+)"',  # a generated corpus folder
    r'tokenize_corpus\([^,()]+,\s*"([^"]+)"',  # a shard folder
    r'\bout="([^"]+)"',  # a training run
    r'Path\("([^"]+)"\)',  # a folder a checkpoint is saved to
)


def _outputs(source: str) -> set[str]:
    return {name for pattern in _WRITES for name in re.findall(pattern, source)}


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_each_example_says_every_file_it_writes(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    run_note = doc.split("Run:", 1)[1].split("\n\n", 1)[0]  # "Run: python ... (writes a, b/ and c here)"
    missing = sorted(name for name in _outputs(source) if name.rstrip("/") not in run_note)
    assert not missing, f"{script.name} writes {missing} without saying so in its Run: line"


def test_the_outputs_found_are_the_ones_the_examples_write() -> None:
    """The patterns above see what each script writes (so the test before them checks something)."""
    found = {p.name: _outputs(p.read_text(encoding="utf-8")) for p in EXAMPLES.glob("0[0-4]_*.py")}
    assert found["00_vector_quantizer.py"] == {"my-vq"}
    assert found["01_tokenize_image.py"] == {"original.png", "reconstruction.png"}
    assert found["02_tokenize_audio.py"] == {"tone.wav", "tone-decoded.wav"}
    assert found["03_interleave_and_shards.py"] == {"toy-corpus", "toy-shards"}
    assert found["04_train_tiny.py"] == {"tiny-corpus", "tiny-shards", "tiny-run", "drawn.png"}


def test_the_audio_example_streams_as_many_seconds_as_its_comment_says() -> None:
    line = next(x for x in (EXAMPLES / "02_tokenize_audio.py").read_text(encoding="utf-8").splitlines()
                if "decode_stream(" in x)
    codes = int(re.search(r"\.split\((\d+)\)", line).group(1))  # type: ignore[union-attr]
    seconds = float(re.search(r"\(([\d.]+) s\) at a time", line).group(1))  # type: ignore[union-attr]
    assert codes / mmtok.load("audio").tokens_per_second == pytest.approx(seconds)


def test_the_video_example_compares_the_stream_with_the_same_cut_planned() -> None:
    source = (EXAMPLES / "05_video_context.py").read_text(encoding="utf-8")
    encoded = re.search(r'il\.encode\(\[.*"chunk_seconds": ([\d.]+)', source)
    planned = re.search(r'plan\(6, preset="mmtok", chunk_seconds=([\d.]+)\)', source)
    assert encoded and planned, "05_video_context.py should plan the clip with the chunk_seconds it encodes it with"
    assert float(encoded.group(1)) == float(planned.group(1))


def test_the_planner_counts_the_example_clip_as_its_stream_holds_it() -> None:
    pytest.importorskip("av")
    il = mmtok.Interleaver(None, video=mmtok.load("video"), audio=mmtok.load("audio"))
    stream = il.encode(["a clip: ", {"video": EXAMPLES / "data" / "pan.mp4", "chunk_seconds": 1.0}])
    text = len(il.encode(["a clip: "]))
    assert len(stream) == text + plan(6, preset="mmtok", chunk_seconds=1.0).total_tokens
    assert len(stream) != text + plan(6, preset="mmtok").total_tokens  # the unchunked count is another figure


def test_the_fingerprint_mmtok_info_gives_is_the_tokenizers_not_a_vocabularys() -> None:
    tok = mmtok.load("audio")
    shown = describe("audio")["fingerprint"]
    assert shown == tok.fingerprint
    assert shown != mmtok.Interleaver(None, audio=tok).vocab.fingerprint
    card = (ROOT / "models" / "README.md").read_text(encoding="utf-8")
    sentence = card.split("`mmtok info audio`", 1)[1].split(".\n", 1)[0]
    assert "vocabulary fingerprint" not in sentence and "tokenizer's fingerprint" in sentence


def test_every_subcommand_is_in_the_readme_command_table() -> None:
    table = (ROOT / "README.md").read_text(encoding="utf-8").split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1) for m in re.finditer(r"^\| `mmtok ([a-z-]+)", table, flags=re.M)}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) <= rows, f"not in README's command table: {sorted(set(sub.choices) - rows)}"
