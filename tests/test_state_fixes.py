"""What mmtok leaves of the calling process as it was: torch's global generator and thread count, the default
dtype, matplotlib's backend, the warning filters; and tokenizers that go to spawn workers."""

from __future__ import annotations

import io
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import mmtok
from mmtok.audio.resample import resampler
from mmtok.context.growth import measure_step
from mmtok.core.plotting import pyplot
from mmtok.data import documents, media_files
from mmtok.image import io as image_io
from mmtok.lm import train as lm_train
from mmtok.lm.model import ModelConfig
from mmtok.vq.kmeans_init import KmeansPool
from tests.test_cli_errors import text_shards
from tests.test_hardening_train import small


class _Codes(Dataset):  # type: ignore[type-arg]
    """One item: the codes of a VectorQuantizer and of the image tokenizer, made in the worker."""

    def __init__(self, vq: mmtok.VectorQuantizer, img: Any, x: torch.Tensor, pic: torch.Tensor) -> None:
        self.vq, self.img, self.x, self.pic = vq, img, x, pic

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vq.encode(self.x), self.img.encode(self.pic)


def test_tokenizers_go_to_a_spawn_worker_and_give_its_codes_there() -> None:
    g = torch.Generator().manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)).eval()
    img = mmtok.load("image")
    x, pic = torch.randn(6, 4, generator=g), torch.rand(3, 16, 16, generator=g)
    loader = DataLoader(_Codes(vq, img, x, pic), batch_size=None, num_workers=1, multiprocessing_context="spawn")
    (vq_codes, img_codes), = list(loader)
    assert torch.equal(vq_codes, vq.encode(x)) and torch.equal(img_codes, img.encode(pic))


def test_a_pickled_kmeans_pool_keeps_drawing_where_it_was() -> None:
    pool = KmeansPool()
    pool.add(torch.randn(100, 2), k=4)
    copy = pickle.loads(pickle.dumps(pool))
    z = torch.randn(50, 2)
    pool.add(z, k=4)
    copy.add(z, k=4)
    assert torch.equal(copy.keys, pool.keys) and torch.equal(copy.rows, pool.rows) and copy.seen == pool.seen


@pytest.mark.parametrize("rate", [44100, 48001])  # the sinc resampler and soxr
def test_resampling_works_with_float64_as_torchs_default_dtype(rate: int) -> None:
    x = torch.randn(3 * rate // 10, generator=torch.Generator().manual_seed(0))  # float32

    def resampled() -> torch.Tensor:
        rs = resampler(rate, 16000)
        return torch.cat([rs.push(x[: rate // 10], last=False), rs.push(x[rate // 10:], last=True)])

    expected = resampled()
    torch.set_default_dtype(torch.float64)
    try:
        got = resampled()
    finally:
        torch.set_default_dtype(torch.float32)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_measuring_a_step_leaves_the_global_generator_as_it_was() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    ids = torch.randint(0, 64, (16,), generator=torch.Generator().manual_seed(0))
    cfg = ModelConfig(vocab_size=64, n_layer=1, n_head=2, n_kv_head=1, d_model=32, max_seq_len=16)
    step = measure_step(cfg, "math", ids, 64)
    assert torch.equal(torch.get_rng_state(), before)
    assert step["train_flops"] > 0 and step["seconds"] > 0


@pytest.mark.parametrize("name", ["image", "audio", "video"])
def test_loading_a_shipped_tokenizer_draws_nothing_from_the_global_generator(name: str) -> None:
    before = torch.get_rng_state()
    mmtok.load(name)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_shards(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def run(shards: Path) -> tuple[Path, int]:
    """A run trained with ``threads=2`` by a caller of one thread, and the caller's thread count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = lm_train.train(small(shards, shards.parent / "run", steps=2, threads=2), progress=False)
        return folder, torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


def test_training_gives_the_caller_its_thread_count_back(run: tuple[Path, int]) -> None:
    assert run[1] == 1


def test_loading_a_run_draws_nothing_from_the_global_generator(run: tuple[Path, int]) -> None:
    before = torch.get_rng_state()
    model, _, _ = mmtok.load_run(run[0])
    assert torch.equal(torch.get_rng_state(), before) and model.cfg.vocab_size > 0


def test_a_training_that_fails_gives_the_thread_count_back_too(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("batches broke")

    monkeypatch.setattr(lm_train, "_Batches", broken)
    torch.set_num_threads(1)
    with pytest.raises(RuntimeError, match="batches broke"):
        lm_train.train(small(shards, tmp_path / "run", threads=2), progress=False)
    assert torch.get_num_threads() == 1


@pytest.fixture
def svg_backend() -> Iterator[None]:
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        yield
    finally:
        plt.switch_backend(before)


@pytest.mark.usefixtures("svg_backend")
def test_a_plot_keeps_the_backend_of_a_process_that_uses_pyplot(tmp_path: Path) -> None:
    import matplotlib

    from mmtok.evaluate import plot_scores

    assert pyplot("a test picture") is not None and matplotlib.get_backend() == "svg"
    rows = [{"file": "a.png", "kind": "image", "model": "image", "psnr_db": 30.0, "ssim": 0.9}]
    out = plot_scores(rows, tmp_path / "scores.png")
    assert matplotlib.get_backend() == "svg"
    assert out.read_bytes().startswith(b"\x89PNG")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _opens(tmp_path: Path) -> dict[str, Callable[[], object]]:
    path = tmp_path / "pic.png"
    path.write_bytes(_png())
    return {"image file": lambda: image_io._open_lazy(path),
            "document bytes": lambda: documents._row_image(_png(), 0, None),  # type: ignore[arg-type]
            "marked": lambda: media_files.marked(path, "mmtok")}


@pytest.mark.parametrize("which", ["image file", "document bytes", "marked"])
def test_threads_opening_pictures_at_once_leave_the_warning_filters_as_they_were(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first open waits (a while) for the second to begin, the second for the first to have returned:
    # two blocks that silence Pillow's size warning overlapping, the first to end ending first
    real_open = Image.open
    began, first_done = threading.Event(), threading.Event()
    calls = []

    def open_in_turn(*args: Any, **kwargs: Any) -> Any:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            began.wait(0.5)
        else:
            began.set()
            first_done.wait(0.5)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", open_in_turn)
    before = list(warnings.filters)
    call = _opens(tmp_path)[which]

    def first() -> None:
        call()
        first_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=call)]
    threads[0].start()
    while not calls:
        threading.Event().wait(0.001)
    threads[1].start()
    for t in threads:
        t.join()
    assert len(calls) == 2 and warnings.filters == before


def test_many_threads_opening_pictures_leave_the_warning_filters_as_they_were(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    opens = list(_opens(tmp_path).values()) * 40
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda f: f(), opens))
    assert warnings.filters == before


def test_a_shipped_tokenizer_loaded_under_a_float64_default_encodes_as_under_float32() -> None:
    """The weights are float32: a caller's ``torch.set_default_dtype(torch.float64)`` does not make the module float64
    (whose layers then refuse the float32 tensors it makes from its input)."""
    wave = (0.3 * np.sin(np.arange(22050) * 0.03)).astype(np.float32)
    want = mmtok.load("audio").encode(wave, sample_rate=44100)
    torch.set_default_dtype(torch.float64)
    try:
        tok = mmtok.load("audio")
        codes = tok.encode(wave, sample_rate=44100)
        assert all(p.dtype == torch.float32 for p in tok.parameters())
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.equal(codes, want)
