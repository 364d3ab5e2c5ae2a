"""The public annotations say what the calls take and give (``py.typed``: users type-check against them).

Each test checks one documented use at run time against the annotation a type checker reads: the
values the call accepts fit its parameter's hint, and what it returns fits its return hint (no
type checker is run here).
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from audio_helpers import small_tokenizer
from image_helpers import fitted_tiny_tokenizer

import mmtok
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.data.shard_ids import ShardFile
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.vq import VectorQuantizer, VQConfig

RATES = (8000, 8000.0, np.int64(8000), np.float32(8000))  # "an int, a numpy integer or an integral float"


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is an instance of the annotation ``hint`` (unions, None, Any and generic origins)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arm) for arm in typing.get_args(hint))
    return isinstance(value, origin or hint)


def hint(fn: Any, name: str) -> Any:
    return typing.get_type_hints(fn)[name]


def overloads(fn: Any) -> Sequence[Any]:
    """The ``@overload`` signatures of ``fn`` (Python 3.11 records them; skipped before)."""
    if sys.version_info < (3, 11):
        pytest.skip("typing.get_overloads needs Python 3.11")
    found = typing.get_overloads(fn)
    assert found, f"{fn.__qualname__} has no overloads"
    return found


def tone(rate: int = 8000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_load_audio_takes_the_rates_it_documents() -> None:
    wave = tone()
    outs = []
    for rate in RATES:
        assert fits(rate, hint(load_audio, "sample_rate")), type(rate)
        out = load_audio(wave, rate)
        assert fits(out, hint(load_audio, "return"))
        outs.append(out)
    assert all(torch.equal(o, outs[0]) for o in outs)


def test_audio_encode_takes_the_rates_load_audio_takes() -> None:
    tok = small_tokenizer()
    wave = tone()
    first = tok.encode(wave, 8000)
    for rate in RATES:
        assert fits(rate, hint(AudioTokenizer.encode, "sample_rate"))
        assert fits(rate, hint(AudioTokenizer.features, "sample_rate"))
        for sig in overloads(AudioTokenizer.encode):  # one clip and a batch alike
            assert fits(rate, hint(sig, "sample_rate")), sig
        assert torch.equal(tok.encode(wave, rate), first)
        assert fits(tok.features(wave, rate), hint(AudioTokenizer.features, "return"))


def test_audio_chunks_are_arrays_and_tensors_not_paths() -> None:
    tok = small_tokenizer()
    for method in (AudioTokenizer.encode_iter, AudioTokenizer.encode_stream):
        (chunk,) = typing.get_args(hint(method, "chunks"))
        assert fits(np.zeros(4, np.float32), chunk) and fits(torch.zeros(4), chunk)
        assert not fits("a.wav", chunk) and not fits(Path("a.wav"), chunk)
    with pytest.raises(TypeError, match="chunk 0 is a path"):
        tok.encode_stream(["a.wav"])  # type: ignore[list-item]
    codes = tok.encode_stream([torch.from_numpy(tone(16000))])
    assert fits(codes, hint(AudioTokenizer.encode_stream, "return"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of byte-text shards of 6 documents."""
    base = tmp_path_factory.mktemp("types")
    corpus = base / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [f"doc {i} " * 3]}) + "\n" for i in range(6)))
    mmtok.tokenize_corpus(corpus, base / "shards")
    return base / "shards"


def test_shard_documents_are_indexed_by_numpy_integers(shards: Path) -> None:
    docs = mmtok.open_shards(shards)
    getitem = type(docs).__getitem__
    for i in (1, np.int64(1), np.int32(-1)):
        assert fits(i, hint(getitem, "i"))
        assert fits(docs[i], hint(getitem, "return"))
    assert np.array_equal(docs[np.int64(1)], docs[1])


def test_packed_windows_are_indexed_by_numpy_integers(shards: Path) -> None:
    ds = mmtok.PackedDataset(shards, seq_len=8, shuffle=False)
    getitem = mmtok.PackedDataset.__getitem__
    for i in (0, np.int64(0)):
        assert fits(i, hint(getitem, "idx"))
        item = ds[i]
        assert isinstance(item, dict) and all(isinstance(v, torch.Tensor) for v in item.values())
    assert torch.equal(ds[np.int64(0)]["ids"], ds[0]["ids"])


def test_packed_dataset_is_a_dataset_of_tensor_dicts(shards: Path) -> None:
    bases = mmtok.PackedDataset.__orig_bases__  # type: ignore[attr-defined]
    (base,) = [b for b in bases if typing.get_origin(b) is torch.utils.data.Dataset]
    assert typing.get_args(base) == (dict[str, torch.Tensor],)
    batch = next(iter(torch.utils.data.DataLoader(mmtok.PackedDataset(shards, seq_len=8), batch_size=2)))
    assert isinstance(batch, dict) and all(isinstance(v, torch.Tensor) for v in batch.values())


def test_shard_file_overloads_give_what_indexing_gives(tmp_path: Path) -> None:
    path = tmp_path / "shard-00000.bin"
    np.arange(10, 20, dtype=np.uint16).tofile(path)
    f = ShardFile(path, np.dtype(np.uint16), 10)
    sigs = overloads(ShardFile.__getitem__)
    for key in (slice(2, 5), 3, np.int64(-1), slice(0, 10, 2)):
        sig = next(s for s in sigs if fits(key, hint(s, "key")))
        assert hint(sig, "return") is not Any, key  # a slice and an int get their own type
        assert fits(f[key], hint(sig, "return")), (key, type(f[key]))


def _typed_call(cls: type) -> bool:
    """Whether ``cls`` tells type checkers that calling it is calling its ``forward`` (``__call__ = forward``
    under ``if TYPE_CHECKING:``; torch's ``nn.Module.__call__`` is typed to return Any)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            if any(ast.unparse(stmt) == "__call__ = forward" for stmt in node.body):
                return True
    return False


@pytest.mark.parametrize("cls", [ImageTokenizer, AudioTokenizer, Transformer, VectorQuantizer])
def test_calling_a_module_is_typed_as_its_forward(cls: type) -> None:
    assert _typed_call(cls), f"{cls.__name__}(...) would be typed Any"
    if cls is VectorQuantizer:
        module: Any = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).eval()
        x = torch.rand(5, 4)
    elif cls is ImageTokenizer:
        module = fitted_tiny_tokenizer()
        x = torch.rand(1, 3, 64, 64)
    elif cls is AudioTokenizer:
        module = small_tokenizer()
        c = module.cfg
        x = torch.zeros(1, c.n_mels, c.frames_per_token * 2 + 2 * module.context_frames)
    else:
        module = Transformer(ModelConfig(vocab_size=32, n_layer=1, d_model=32, max_seq_len=16)).eval()
        x = torch.zeros(1, 4, dtype=torch.long)
    assert fits(module(x), hint(cls.forward, "return"))  # type: ignore[attr-defined]


def test_examples_import_names_their_modules_export() -> None:
    """``from m import name`` in an example names something ``m`` exports (its ``__all__``): a type checker refuses
    a name a module only imports, and the layout keeps re-exports to the package faces."""
    import importlib

    examples = Path(__file__).resolve().parents[1] / "examples"
    borrowed = []
    for script in sorted(examples.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mmtok":
                exported = getattr(importlib.import_module(node.module), "__all__", None)
                borrowed += [f"{script.name}: {node.module}.{a.name}" for a in node.names
                             if exported is not None and a.name not in exported]
    assert not borrowed, borrowed


@pytest.mark.parametrize("shape", [(1, 0), (0, 4), (4,), (1, 2, 3)])
def test_the_transformer_refuses_ids_that_are_not_a_batch_of_tokens(shape: tuple[int, ...]) -> None:
    from mmtok.lm.model import ModelConfig, Transformer

    model = Transformer(ModelConfig.preset("tiny", vocab_size=100))
    with pytest.raises(ValueError, match=r"^ids must be \[B, T\] with at least one token, got shape "):
        model(torch.zeros(shape, dtype=torch.long))  # before: (1, 0) killed the process (SIGFPE)


def test_a_decoded_stream_is_a_list_of_segment_dicts() -> None:
    from mmtok.stream.parse import Decoded

    assert Decoded.__orig_bases__ == (list[dict[str, Any]],)  # type: ignore[attr-defined]
    il = mmtok.Interleaver(None)
    out = il.decode(il.encode([{"text": "hi"}]))
    assert isinstance(out, Decoded) and out == [{"text": "hi"}] and out.repairs == []
