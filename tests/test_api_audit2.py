"""The Python API as a notebook scripts it: PackedDataset under a DataLoader whose workers persist across
epochs; the shard writer given a numpy dtype as numpy spells it; the transformer fed ids as shards hold them
(uint16), ids outside its vocabulary, positions and document numbers of the wrong shape, and configs it cannot
build; a quantizer inside a user's model loaded with ``assign=True``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.lm.model import KVCache, ModelConfig, Transformer


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text-only corpus of 30 short documents, tokenized (about 1,000 ids)."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "docs.jsonl").write_text("".join(f'{{"segments": ["document {i} holds a line of text"]}}\n' for i in range(30)))
    mmtok.tokenize_corpus(d / "docs.jsonl", d / "shards")
    return d / "shards"


def _all_ids(ds: mmtok.PackedDataset) -> torch.Tensor:
    return torch.stack([ds[i]["ids"] for i in range(len(ds))])


def test_set_epoch_reaches_persistent_dataloader_workers(shards: Path) -> None:
    ds = mmtok.PackedDataset(shards, seq_len=16, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=1000, num_workers=2, persistent_workers=True)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = torch.cat([b["ids"] for b in loader])
        assert torch.equal(got, _all_ids(ds)), f"epoch {epoch}: the workers read another order"
        seen.append(got)
    assert not torch.equal(seen[0], seen[1])  # a new order each epoch, not epoch 0's again


def test_a_copy_follows_set_epoch_and_set_epoch_checks_its_argument(shards: Path) -> None:
    import copy

    ds = mmtok.PackedDataset(shards, seq_len=16, seed=0)
    twin = copy.copy(ds)  # what a forked worker holds: the same shared epoch
    ds.set_epoch(3)
    fresh = mmtok.PackedDataset(shards, seq_len=16, seed=0)
    fresh.set_epoch(3)
    assert torch.equal(_all_ids(twin), _all_ids(fresh)) and twin.epoch == 3
    with pytest.raises(ValueError, match="set_epoch takes a whole number >= 0"):
        ds.set_epoch(-1)


def test_packed_dataset_takes_the_tensor_indices_of_a_subset_sampler(shards: Path) -> None:
    ds = mmtok.PackedDataset(shards, seq_len=16, shuffle=False)
    sampler = torch.utils.data.SubsetRandomSampler(torch.arange(3), generator=torch.Generator().manual_seed(0))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, sampler=sampler)))
    assert sorted(batch["ids"][:, 0].tolist()) == sorted(ds[i]["ids"][0].item() for i in range(3))
    assert torch.equal(ds[torch.tensor(1)]["ids"], ds[1]["ids"])
    with pytest.raises(TypeError, match="indexed by an int"):
        ds[torch.tensor(1.0)]


@pytest.mark.parametrize("dtype", [np.uint16, "uint16", np.dtype("uint32")])
def test_the_shard_writer_takes_a_dtype_in_any_form_numpy_reads(tmp_path: Path, dtype: object) -> None:
    from mmtok.core.files import write_atomic
    from mmtok.data.shards import MANIFEST, ShardWriter, json_bytes, shard_manifest
    from mmtok.stream.vocab import Modality

    il = mmtok.Interleaver(mmtok.Vocabulary(256, ranges={"image": 16}))
    docs = [["hello"], ["a", {"image_codes": [[1, 2], [3, 4]]}], ["bye now"]]
    writer = ShardWriter(tmp_path, "run", dtype, 16, 1, 0)  # type: ignore[arg-type]
    for line, doc in enumerate(docs, 1):
        s = il.encode(doc)
        writer.add(line, s.ids.numpy(), np.bincount(s.modality.numpy(), minlength=len(Modality)))  # commits at 16
    writer.commit(len(docs) + 1)
    manifest = shard_manifest(tmp_path, "run", {"dtype": np.dtype(dtype).name}, il.vocab, {"file": "docs.jsonl"})
    write_atomic(tmp_path / MANIFEST, json_bytes(manifest))
    shards = mmtok.open_shards(tmp_path)
    assert [il.pretty(ids) for ids in shards] == ["hello", "a[image 2×2]", "bye now"]
    assert len(manifest["shards"]) == 2


def test_the_shard_writer_refuses_a_dtype_shards_do_not_hold(tmp_path: Path) -> None:
    from mmtok.core.errors import CorpusError
    from mmtok.data.shards import ShardWriter

    with pytest.raises(CorpusError, match="stores ids as one of uint16, uint32, got dtype 'int64'"):
        ShardWriter(tmp_path, "run", "int64", 16, 1, 0)  # type: ignore[arg-type]


def _tiny(vocab_size: int = 300, **kw: object) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab_size, n_layer=1, n_head=2, n_kv_head=1, d_model=16,
                                   max_seq_len=32, **kw)).eval()  # type: ignore[arg-type]


def test_transformer_takes_ids_as_shards_hold_them(shards: Path) -> None:
    ds = mmtok.PackedDataset(shards, seq_len=8, shuffle=False)
    model = _tiny(ds.vocab.size)
    ids = ds[0]["ids"][None]  # (1, 8) int64
    ref = model(ids)
    tokens = np.array(ds.shards.tokens[0][:8])[None]  # uint16, as np.memmap of a shard or an export reads them
    assert tokens.dtype == np.uint16
    for form in (torch.from_numpy(tokens), ids.to(torch.int16), ids.int()):
        assert torch.equal(model(form), ref), form.dtype
    small = ids % 256
    assert torch.equal(model(small.to(torch.uint8)), model(small))


def test_transformer_refuses_ids_outside_its_vocabulary_and_float_ids() -> None:
    model = _tiny(300)
    for bad in ([[1, 300]], [[-1, 5]]):
        with pytest.raises(ValueError, match=r"ids must lie in \[0, 300\) \(the model's vocab_size\)"):
            model(torch.tensor(bad))
    with torch.no_grad(), pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[999]]))
    with pytest.raises(TypeError, match=r"ids must be integers, got dtype torch.float32 .*\.long\(\)"):
        model(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"one sequence \[T\] is ids\[None\]"):
        model(torch.tensor([1, 2, 3]))


def test_transformer_names_positions_documents_and_caches_of_the_wrong_shape() -> None:
    model = _tiny(300)
    ids = torch.randint(0, 300, (2, 6))
    ref = model(ids)
    assert torch.allclose(model(ids, pos=torch.arange(6)[None]), ref)  # one row of positions for every row
    with pytest.raises(ValueError, match=r"pos must be \[B, T\] = \[2, 6\] for these ids, got \[6\]"):
        model(ids, pos=torch.arange(6))
    with pytest.raises(ValueError, match=r"pos must be \[B, T\] = \[2, 6\] for these ids, got \[2, 5\]"):
        model(ids, pos=torch.arange(5).expand(2, 5))
    with pytest.raises(ValueError, match=r"doc must be \[B, T\] = \[2, 6\] for these ids, got \[6\]"):
        model(ids, doc=torch.tensor([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"doc must be \[B, T\] = \[2, 6\] for these ids, got \[2, 4\]"):
        model(ids, doc=torch.tensor([[0, 0, 1, 1]] * 2))
    cache = KVCache.empty(model.cfg, 3, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="the KVCache holds 3 rows but ids has 2"):
        model(ids, cache=cache)
    cache = KVCache.empty(model.cfg, 2, torch.device("cpu"), torch.float32)
    model(ids[:, :4], cache=cache)
    with pytest.raises(ValueError, match=r"doc must be \[B, T\] = \[2, 6\] \(T counting the 4 cached positions"):
        model(ids[:, 4:], cache=cache, doc=torch.zeros(2, 2, dtype=torch.long))


@pytest.mark.parametrize(("field", "value"), [
    ("vocab_size", 0), ("vocab_size", 300.0), ("n_layer", True), ("n_head", 0), ("max_seq_len", 0),
    ("dropout", 1.5), ("rope_theta", float("nan")), ("norm_eps", 0.0), ("mlp_ratio", -1.0),
])
def test_model_config_refuses_values_it_cannot_build(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field} must be a"):
        ModelConfig(**{field: value})  # type: ignore[arg-type]


def test_model_config_keeps_numpy_sizes_as_python_numbers() -> None:
    cfg = ModelConfig(vocab_size=np.int64(300), dropout=np.float32(0.0))
    assert type(cfg.vocab_size) is int and type(cfg.dropout) is float
    assert ModelConfig.preset("tiny", vocab_size=300).vocab_size == 300


class _Net(torch.nn.Module):
    """A user's model with a quantizer inside (projected lookups: the projections are state too)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Linear(8, 8)
        self.vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=16, codebook_dim=4))


def _trained_net() -> _Net:
    torch.manual_seed(0)
    net = _Net()
    net.vq(torch.randn(200, 8))  # k-means init and one EMA step
    return net.eval()


def test_a_quantizer_built_on_meta_and_loaded_with_assign_counts_usage() -> None:
    net, x = _trained_net(), torch.randn(300, 8)
    with torch.device("meta"):
        fresh = _Net()
    fresh.load_state_dict(net.state_dict(), assign=True)
    assert torch.equal(fresh.eval().vq.encode(x), net.vq.encode(x))
    stats = fresh.vq.usage_stats()  # the counters were left on the meta device: NotImplementedError
    assert stats.total == 300 and stats.counts.sum() == 300


def test_a_half_precision_state_dict_loaded_with_assign_keeps_the_state_float32() -> None:
    net, x = _trained_net(), torch.randn(300, 8)
    half = {k: (t.half() if t.is_floating_point() else t) for k, t in net.state_dict().items()}
    fresh = _Net()
    fresh.load_state_dict(half, assign=True)
    vq = fresh.vq.eval()
    assert {n: t.dtype for n, t in vq.state_dict().items() if t.is_floating_point()} == dict.fromkeys(
        ["embed", "ema_count", "ema_sum", "project_in.weight", "project_in.bias", "project_out.weight",
         "project_out.bias"], torch.float32)
    assert isinstance(vq.project_in.weight, torch.nn.Parameter) and vq.project_in.weight.requires_grad
    copy = _Net()
    copy.load_state_dict(half)  # copied into float32 tensors: the same codes
    assert torch.equal(vq.encode(x), copy.eval().vq.encode(x))
    vq.train()(x)  # a training step runs on it (float32 lookups met float16 projections)


@pytest.mark.parametrize("kw", [{}, {"exact_ties": True}, {"chunk_size": 7}])
def test_nearest_code_searches_vectors_that_carry_gradients(kw: dict) -> None:
    from mmtok.vq.search import nearest_code

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g).requires_grad_()  # an encoder's output inside a training step
    codebook = torch.randn(32, 8, generator=g).requires_grad_()
    want = torch.cdist(x.detach().double(), codebook.detach().double()).argmin(1)
    got = nearest_code(x, codebook, **kw)  # was: RuntimeError "addmm(): functions with out=... arguments ..."
    assert torch.equal(got, want) and not got.requires_grad


def test_audio_decodes_by_griffin_lim_inside_a_bfloat16_autocast_region() -> None:
    from audio_helpers import small_tokenizer

    tok = small_tokenizer()  # no learned vocoder: decode runs Griffin-Lim
    wave = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0))
    codes = tok.encode(wave, 16000)
    plain = tok.decode(codes)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a training loop's region (was: "Unexpected dtype")
        got = tok.decode(codes)
        batch = tok.decode(torch.stack([codes, codes]))
    assert got.dtype == torch.float32 and got.shape == plain.shape and bool(got.isfinite().all())
    assert batch.shape == (2, *plain.shape)


def test_image_codes_do_not_depend_on_an_autocast_region() -> None:
    tok = mmtok.load("image")
    x = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    codes = tok.encode(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # was: about 1 code in 200 another
        assert torch.equal(tok.encode(x), codes)
        assert torch.equal(tok.encode(x[0]), codes[0])
    assert torch.is_autocast_enabled("cpu") is False


def test_audio_codes_do_not_depend_on_an_autocast_region() -> None:
    from audio_helpers import small_tokenizer

    tok = small_tokenizer()  # a learned conv encoder, its codebook fitted by k-means below
    wave = 0.1 * torch.randn(4 * 16000, generator=torch.Generator().manual_seed(0))
    tok.train()(tok.context_features(wave)[None])
    tok.eval()
    codes = tok.encode(wave, 16000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok.encode(wave, 16000), codes)
        assert torch.equal(tok.encode(wave, 16000, chunk_seconds=1.5), codes)
        assert torch.equal(tok.encode_stream(wave.split(7000)), codes)
        blocks = tok.encode_iter(wave.split(7000))
        first = next(blocks)
        assert torch.is_autocast_enabled("cpu")  # the caller's region holds between blocks
        assert torch.equal(torch.cat([first, *blocks]), codes)


@pytest.fixture
def float64_default() -> Iterator[None]:
    """``torch.set_default_dtype(torch.float64)``, as a notebook of scientific code sets it, undone after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("kw", [{}, {"codebook_dim": 4}, {"cosine": True, "codebook_dim": 4}])
def test_a_quantizer_made_under_a_float64_default_keeps_float32_state_and_runs(float64_default: None,
                                                                               kw: dict) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=16, **kw))
    assert {t.dtype for t in vq.state_dict().values() if t.is_floating_point()} == {torch.float32}
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))  # float64, the default now
    assert vq(x).quantized.dtype == torch.float64  # projections: "mat1 and mat2 must have the same dtype"
    assert vq.rebalance(x).total == 200  # rebalance: "Index put requires the source and destination dtypes match"
    assert vq.eval().encode(x).shape == (200,)
