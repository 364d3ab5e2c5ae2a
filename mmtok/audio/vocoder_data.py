"""The vocoder's training material: a 16 kHz int16 cache of a corpus, and segments drawn from it.

``build_cache(corpus, cache)``: every ``train`` and ``validation`` file of ``corpus/manifest.jsonl``
(as ``benchmarks/fetch_corpus.py`` writes it) decoded (soundfile, PyAV as fallback), downmixed to
mono, resampled to 16 kHz with soxr ("HQ") and appended as int16 to ``SPLIT.int16``;
``SPLIT.jsonl`` has one line per manifest row (offset and length in samples, source, group, kind,
language; or the reason it was skipped). Every manifest row is checked before anything is written
(:func:`read_manifest`); so is PyAV, when a file needs it (:func:`check_av`): a file is skipped for
what it holds, never because PyAV is missing. A killed build resumes where it stopped; ``index.json``
is written last, only when both splits hold files, and marks the cache complete. ``source.json`` and ``index.json``
record the manifest's sha256: a cache made from another version of the manifest is refused (delete
the folder to build it anew). A file listed in two of the splits (train, validation, test) is refused
(figures on audio that was trained on would mean nothing). The ``test`` split is never cached.
:func:`check_sample_rate` refuses a model that works at another rate than the cache's audio.

:class:`AudioCache` memory-maps one split; :func:`draw_batch` draws training segments with
:func:`sampling_weights` (source ∝ √hours, group ∝ √hours, file ∝ length, uniform offset) from
NumPy's global RNG, so a resumed run draws what it would have drawn; :func:`validation_set` picks
the fixed validation segments and speech clips. :func:`~mmtok.core.run_folder.content_digest` is what the audio trainers
record of the audio they train on (a cache's: :func:`cache_digest`), so that ``--resume`` refuses
other audio and takes the same audio moved.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.audio.arrays import MAX_FLOAT_PEAK, check_float_peak
from mmtok.audio.av_read import (
    INSTALL_AV,
    decoded_audio,
    ffmpeg_only_kind,
    open_container,
    optional_av,
    take_stream,
)
from mmtok.audio.front_end import HOP_LENGTH, SAMPLE_RATE
from mmtok.core.errors import AudioError, CorpusError, UsageError
from mmtok.core.files import write_atomic
from mmtok.core.manifest import EXAMPLE, manifest_rows
from mmtok.core.run_folder import content_digest
from mmtok.core.trainstate import json_digest

__all__ = [
    "AudioCache",
    "Clip",
    "MixedClips",
    "build_cache",
    "cache_digest",
    "check_av",
    "check_sample_rate",
    "decode_file",
    "draw_batch",
    "listed_digest",
    "mixed_weights",
    "read_jsonl",
    "read_manifest",
    "rewrite_jsonl",
    "sampling_weights",
    "to_cache_samples",
    "truncate_log",
    "validation_set",
    "write_json_atomic",
]

CACHE_FORMAT = "mmtok-audio-cache"
CACHE_VERSION = 1
CACHE_SPLITS = ("train", "validation")  # never "test"
BUILD_COMMAND = "mmtok train-tokenizer vocoder --corpus CORPUS --cache"  # what builds a cache, said in refusals
INT16_SCALE = 32767.0
SOURCE_NAME = "source.json"  # the manifest (path and sha256) a cache is built from
UNSCALED = f"float samples over {MAX_FLOAT_PEAK:g}, far outside [-1, 1]: integer PCM stored as float?"  # skipped,
# as load_audio refuses such a file (mmtok.audio.arrays.check_float_peak)
SILENT_PEAK = 1e-4  # files whose peak stays below this (-80 dBFS) are skipped as silent
NO_AV_SKIPS = ("decode failed: ModuleNotFoundError", "decode failed: ImportError")  # skips that only mean no PyAV


def decode_file(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate: soundfile first, PyAV (:func:`~mmtok.audio.av_read.decoded_audio`)
    for what it cannot read, from the stream :func:`~mmtok.audio.av_read.pick_stream` takes (a warning names it
    when there are several). A file neither reads is an :class:`AudioError`; one libsndfile cannot read
    while PyAV is not installed, a :class:`UsageError` saying how to install it."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (S, channels)
        return data.mean(axis=1), int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        failed = e
    av = optional_av()
    if av is None:
        raise UsageError(f"cannot cache {path}: libsndfile cannot read it ({failed}) and PyAV, which may, is not "
                         f"installed: {INSTALL_AV}") from failed
    where = f"audio file {path}"
    with open_container(av, path, where, AudioError) as container:
        stream = take_stream(container, "audio", where, AudioError, "its sound is", stacklevel=2)
        rate = int(stream.rate or stream.codec_context.sample_rate)
        # planar float at the stream's own layout and rate, then the channels averaged as soundfile's are above
        # (FFmpeg's own mono mix weighs each of two channels 0.707: a stereo file would come out 3 dB louder)
        parts = [p.mean(axis=0) for _, planes in decoded_audio(av, container, stream, where, AudioError)
                 for p in planes]
    return (np.concatenate(parts) if parts else np.zeros(0)).astype(np.float32), rate


def to_cache_samples(path: Path) -> np.ndarray:
    """int16 mono samples at 16 kHz of one file; raises ``ValueError`` with a short reason when the file cannot
    be used (a :class:`UsageError` from :func:`decode_file`, PyAV missing, is passed on: it is no reason to
    skip a file). A float file whose samples pass :data:`~mmtok.audio.arrays.MAX_FLOAT_PEAK` (integer PCM
    stored as float) is one: :func:`~mmtok.audio.io.load_audio` refuses it too, and clipped to [-1, 1] it would be a square wave."""
    import soxr

    try:
        x, rate = decode_file(path)
    except AudioError as e:
        raise ValueError(f"decode failed: {type(e.__cause__ or e).__name__}") from e
    if x.size == 0:
        raise ValueError("empty")
    if not np.isfinite(x).all():
        raise ValueError("non-finite samples")
    try:  # integer PCM stored as float, unscaled: the clip below would make it a square wave
        check_float_peak(torch.from_numpy(x), f"audio file {path}")
    except AudioError:
        raise ValueError(UNSCALED) from None
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ")
    if x.size < SAMPLE_RATE // 10:
        raise ValueError("shorter than 0.1 s")
    if float(np.abs(x).max()) < SILENT_PEAK:
        raise ValueError("silent")
    return np.round(np.clip(x, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def check_av(corpus: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Refuse (:class:`UsageError`, one line) to cache ``rows`` of ``corpus`` without PyAV when one of their files
    is audio libsndfile does not read (AAC/M4A, by its first bytes: :func:`~mmtok.audio.av_read.ffmpeg_only_kind`)."""
    if optional_av() is not None:
        return
    paths = [corpus / r["path"] for r in rows]
    needs = [p for p in paths if p.is_file() and ffmpeg_only_kind(p) is not None]
    if needs:
        raise UsageError(f"{corpus / 'manifest.jsonl'} lists {len(needs)} AAC/M4A file(s) (e.g. {needs[0]}), which "
                         f"libsndfile does not decode: caching them needs PyAV: {INSTALL_AV}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file (a line cut short by a kill is dropped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON in ``path``, written whole or not at all (:func:`~mmtok.core.files.write_atomic`)."""
    write_atomic(path, json.dumps(obj, indent=1) + "\n")


def rewrite_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``path`` rewritten to hold ``rows``, one JSON line each, whole or not at all
    (:func:`~mmtok.core.files.write_atomic`)."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def truncate_log(path: Path, step: int) -> None:
    """Drop the lines of a run's JSONL log past ``step`` (written after the checkpoint a resumed run restarts
    from); ``step`` -1 drops them all."""
    rows = read_jsonl(path)
    keep = [r for r in rows if r.get("step", 0) <= step]
    if len(keep) != len(rows) or path.is_file():
        rewrite_jsonl(path, keep)


def listed_digest(train: AudioCache, val: AudioCache) -> str:
    """What a train-state saved before :func:`~mmtok.audio.vocoder_data.cache_digest` was recorded keeps of its
    cache (under ``material``): every clip's corpus path and length, both splits. Such a run is resumed by that
    rule; its next checkpoint records the content."""
    return json_digest([[(c.path, c.length) for c in split.clips] for split in (train, val)])


def read_manifest(manifest: Path) -> list[dict[str, Any]]:
    """The rows of a corpus's ``manifest.jsonl``, every one checked before the cache is touched
    (:func:`~mmtok.core.manifest.manifest_rows`: a :class:`CorpusError` ``MANIFEST:LINE: what is wrong``; a file
    listed in two of its splits, test included, is one), and one naming the splits found when ``train`` or
    ``validation`` has no row."""
    rows = [row for _, row in manifest_rows(manifest)]
    splits = Counter(r["split"] for r in rows)
    missing = [s for s in CACHE_SPLITS if not splits[s]]
    if missing:
        found = ", ".join(f"{k} ({n})" for k, n in sorted(splits.items())) or "none"
        raise CorpusError(f"{manifest} has no {' and no '.join(missing)} rows (splits found: {found}); the cache "
                          f"needs rows with \"split\": \"train\" and \"validation\"")
    return rows


def _same_manifest(cache: Path, recorded: str | None, manifest: Path, digest: str, *, built: bool) -> None:
    """Refuse a cache made (or being made) from another version of ``manifest``; deletes nothing."""
    if recorded is None or recorded == digest:
        return
    state = "was built" if built else "is being built"
    raise CorpusError(f"cache {cache} {state} from another version of {manifest} (sha256 {recorded[:12]}..., now "
                      f"{digest[:12]}...): delete the folder {cache} to build it anew, or give another --cache")


def _skipped_without_av(cache: Path, summary: dict[str, Any]) -> None:
    """Refuse a complete cache that skipped files because PyAV was missing when it was built (its ``index.json``
    counts them as ``decode failed: ModuleNotFoundError``): it holds less than its manifest lists."""
    missing = sum(n for split in summary.get("splits", {}).values() for why, n in split.get("skipped", {}).items()
                  if why in NO_AV_SKIPS)
    if missing:
        raise CorpusError(f"cache {cache} skipped {missing} file(s) because PyAV was not installed when it was built: "
                          f"delete the folder {cache} and build it again with PyAV installed: {INSTALL_AV}")


def build_cache(corpus: str | os.PathLike[str], cache: str | os.PathLike[str], *, progress: bool = True) -> dict[str, Any]:
    """Decode and resample the train and validation files of ``corpus`` into ``cache`` (see the module
    docstring); return the summary written to ``cache/index.json``. Resumes a killed build; a complete
    cache is returned as is. Every manifest row is checked before anything is written; a cache made
    from another version of the manifest (its sha256 differs) is refused, never rebuilt in place."""
    corpus, cache = Path(corpus), Path(cache)
    manifest = corpus / "manifest.jsonl"
    if not manifest.is_file():
        raise CorpusError(f"--corpus {str(corpus)!r} has no manifest.jsonl: write one there, a line per audio file "
                          f"such as {EXAMPLE} (the path relative to the folder; \"validation\" rows are held aside)")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    if (cache / "index.json").is_file():
        summary = json.loads((cache / "index.json").read_text())
        _same_manifest(cache, summary.get("manifest_sha256"), manifest, digest, built=True)
        _skipped_without_av(cache, summary)
        return summary
    rows = read_manifest(manifest)
    source = cache / SOURCE_NAME  # which manifest a build in progress reads
    if source.is_file():
        _same_manifest(cache, json.loads(source.read_text()).get("manifest_sha256"), manifest, digest, built=False)
    check_av(corpus, [r for r in rows if r["split"] in CACHE_SPLITS])
    cache.mkdir(parents=True, exist_ok=True)
    write_json_atomic(source, {"manifest": str(manifest.resolve()), "manifest_sha256": digest})
    summary: dict[str, Any] = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "sample_rate": SAMPLE_RATE,
                               "dtype": "int16", "corpus": str(corpus.resolve()), "manifest_sha256": digest,
                               "splits": {}}
    for split in CACHE_SPLITS:
        done = _cache_split(corpus, cache, split, [r for r in rows if r["split"] == split], progress=progress)
        ok = [d for d in done if "offset" in d]
        skipped = dict(Counter(d["error"] for d in done if "error" in d))
        if not ok:
            raise CorpusError(f"cache {cache}: none of the {len(done)} {split} files of {manifest} could be used "
                              f"({skipped}); fix or replace them, then delete {cache} and build it again")
        summary["splits"][split] = {"files": len(ok), "hours": round(sum(d["length"] for d in ok) / SAMPLE_RATE / 3600, 3),
                                    "skipped": skipped}
    write_json_atomic(cache / "index.json", summary)
    return summary


def _cache_split(corpus: Path, cache: Path, split: str, todo: list[dict[str, Any]], *, progress: bool) -> list[dict[str, Any]]:
    """Append the files of ``todo`` not cached yet to ``SPLIT.int16`` and ``SPLIT.jsonl``; the split's index lines."""
    from tqdm import tqdm

    data_path, index_path = cache / f"{split}.int16", cache / f"{split}.jsonl"
    done = [d for d in read_jsonl(index_path) if d.get("error") not in NO_AV_SKIPS]  # those are tried again
    end = max((d["offset"] + d["length"] for d in done if "offset" in d), default=0)
    rewrite_jsonl(index_path, done)  # drop a torn last line
    with open(data_path, "ab") as f:
        f.truncate(end * 2)  # samples written after the last index line are not trusted
    seen = {d["path"] for d in done}
    bar = tqdm(total=len(todo), initial=len(seen), disable=not progress, desc=f"cache {split}")
    with open(data_path, "ab") as data, open(index_path, "a") as index:
        for r in todo:
            if r["path"] in seen:
                continue
            entry = {k: r.get(k) for k in ("path", "source", "group", "kind", "language")}
            try:
                x = to_cache_samples(corpus / r["path"])
            except UsageError:  # PyAV missing: no reason to skip the file for good
                raise
            except ValueError as e:
                entry["error"] = str(e)
            else:
                data.write(x.tobytes())
                data.flush()
                entry.update(offset=end, length=int(x.size))
                end += int(x.size)
            index.write(json.dumps(entry) + "\n")
            index.flush()
            bar.update(1)
    bar.close()
    return read_jsonl(index_path)


def check_sample_rate(cache: str | os.PathLike[str], rate: int, what: str) -> None:
    """Refuse (:class:`~mmtok.core.errors.UsageError`, one line) ``what``, a model that works at ``rate`` Hz, for
    the audio of ``cache``: the rate its ``index.json`` records (one not built yet will hold 16 kHz, what
    :func:`build_cache` writes). Fed the cache's samples, such a model would take them for another rate."""
    index = Path(cache) / "index.json"
    held = int(json.loads(index.read_text()).get("sample_rate", SAMPLE_RATE)) if index.is_file() else SAMPLE_RATE
    if int(rate) != held:
        raise UsageError(f"{what} works at {rate} Hz, but the audio of cache {cache} is {held} Hz: give a model "
                         f"made for {held} Hz audio")


def cache_digest(cache: str | os.PathLike[str]) -> str:
    """:func:`content_digest` of a built cache: each split's samples, with the corpus path and length of every clip
    in it (a moved cache, or one rebuilt from the same files, gives the same)."""
    splits = [AudioCache(cache, split) for split in CACHE_SPLITS]
    return content_digest(([s.split, [(c.path, c.length) for c in s.clips]], s.samples) for s in splits)


@dataclass
class Clip:
    """One cached file: where its samples are and what it is."""

    offset: int  # first sample in SPLIT.int16
    length: int  # samples
    source: str  # the package or collection it came from
    group: str  # speaker / game voice / album within the source
    kind: str  # speech, music or sounds
    path: str  # path in the corpus (for reports)


class AudioCache:
    """One split of a built cache: an int16 memmap and its clips."""

    def __init__(self, cache: str | os.PathLike[str], split: str) -> None:
        cache = Path(cache)
        if not cache.exists():
            raise CorpusError(f"cache {cache}: no such folder; build it with {BUILD_COMMAND} {cache}")
        if not (cache / "index.json").is_file():
            raise CorpusError(f"cache {cache} is not complete (no index.json): build it with {BUILD_COMMAND} {cache}")
        if split not in CACHE_SPLITS:
            raise CorpusError(f"cache {cache} has no {split!r} split: a cache holds {' and '.join(CACHE_SPLITS)} "
                              "audio only (the test split is never cached)")
        self.split = split
        self.clips = [
            Clip(d["offset"], d["length"], str(d.get("source")), str(d.get("group")), str(d.get("kind")), d["path"])
            for d in read_jsonl(cache / f"{split}.jsonl") if "offset" in d
        ]
        if not self.clips:
            raise CorpusError(f"cache {cache} holds no {split} clips (its manifest had none, or none could be read): "
                              f"delete {cache} and build it again with {BUILD_COMMAND} {cache}, or give another --cache")
        data = cache / f"{split}.int16"
        need = max(c.offset + c.length for c in self.clips)  # samples the index points into
        size = data.stat().st_size if data.is_file() else None
        if not size or size < 2 * need or size % 2:  # an empty file cannot be memory-mapped either
            held = ("is missing" if size is None else f"holds {size} bytes (not whole int16 samples)" if size % 2
                    else f"holds {size} bytes ({size // 2} int16 samples)")
            raise CorpusError(f"cache {cache}: {data} {held}, but {split}.jsonl's clips need {need} samples "
                              f"({2 * need} bytes; the file is cut short or from another build): delete {cache} and "
                              f"build it again with {BUILD_COMMAND} {cache}")
        self.samples = np.memmap(data, dtype=np.int16, mode="r")

    def read(self, clip: Clip, start: int = 0, length: int | None = None) -> np.ndarray:
        """float32 samples ``[length]`` of ``clip`` from ``start`` (zero-padded past its end)."""
        length = clip.length - start if length is None else length
        out = np.zeros(length, np.float32)
        n = max(0, min(length, clip.length - start))
        out[:n] = self.samples[clip.offset + start : clip.offset + start + n] / INT16_SCALE
        return out


class MixedClips:
    """A cache split with extra in-memory clips mixed in (the seeded synthetic tones, chirps, noises
    and clicks of :func:`~mmtok.audio.corpus.synthetic_clips`): the ``clips`` / ``read`` interface
    of :class:`AudioCache`, so :func:`draw_batch` samples from both. Each extra clip is its own
    group of the source ``source``.

    >>> mixed = MixedClips(None, [np.ones(5, np.float32)])
    >>> mixed.read(mixed.clips[0], 3, 4).tolist(), mixed.clips[0].path
    ([1.0, 1.0, 0.0, 0.0], 'synthetic:0')
    """

    def __init__(self, cache: AudioCache | None, extra: Sequence[np.ndarray], *, source: str = "synthetic",
                 kind: str = "sounds") -> None:
        self.cache = cache
        self.split = cache.split if cache is not None else "train"
        self.samples_extra = np.concatenate([np.asarray(x, np.float32) for x in extra]) if extra else np.zeros(0, np.float32)
        offsets = np.cumsum([0] + [len(x) for x in extra])
        self.extra = [Clip(int(offsets[i]), len(x), source, f"{source}-{i}", kind, f"{source}:{i}")
                      for i, x in enumerate(extra)]
        self._extra_ids = {id(c) for c in self.extra}
        self.clips = (list(cache.clips) if cache is not None else []) + self.extra

    def read(self, clip: Clip, start: int = 0, length: int | None = None) -> np.ndarray:
        """float32 samples ``[length]`` of ``clip`` from ``start`` (zero-padded past its end)."""
        if id(clip) not in self._extra_ids:
            assert self.cache is not None
            return self.cache.read(clip, start, length)
        length = clip.length - start if length is None else length
        out = np.zeros(length, np.float32)
        n = max(0, min(length, clip.length - start))
        out[:n] = self.samples_extra[clip.offset + start : clip.offset + start + n]
        return out


def mixed_weights(real: np.ndarray, extra: int, share: float) -> np.ndarray:
    """Draw probabilities for ``real`` clips (their :func:`sampling_weights`) followed by ``extra``
    clips that together get ``share`` of the draws, equally.

    >>> mixed_weights(np.array([0.75, 0.25]), 2, 0.2).round(3).tolist()
    [0.6, 0.2, 0.1, 0.1]
    """
    if not extra:
        return real
    if not 0.0 < share < 1.0:
        raise ValueError(f"the extra clips' share must be in (0, 1), got {share}")
    return np.concatenate([real / real.sum() * (1.0 - share), np.full(extra, share / extra)])


def sampling_weights(clips: Sequence[Clip]) -> np.ndarray:
    """Probability of each clip: source ∝ √hours, group within it ∝ √hours, clip within it ∝ length.

    >>> cs = [Clip(0, 4, "a", "g", "speech", "x"), Clip(0, 1, "b", "h", "speech", "y")]
    >>> sampling_weights(cs).round(3).tolist()
    [0.667, 0.333]
    """
    src, grp = defaultdict(float), defaultdict(float)
    for c in clips:
        src[c.source] += c.length
        grp[(c.source, c.group)] += c.length
    src_p = {s: math.sqrt(v) for s, v in src.items()}
    total = sum(src_p.values())
    grp_sum = defaultdict(float)
    for (s, _), v in grp.items():
        grp_sum[s] += math.sqrt(v)
    w = np.array([
        src_p[c.source] / total * math.sqrt(grp[(c.source, c.group)]) / grp_sum[c.source]
        * c.length / grp[(c.source, c.group)]
        for c in clips
    ])
    return w / w.sum()


def draw_batch(cache: AudioCache | MixedClips, probs: np.ndarray, batch: int, samples: int, gain_db: float) -> torch.Tensor:
    """``[batch, samples]`` random segments (global NumPy RNG, so a resumed run draws the same ones)."""
    picks = np.random.choice(len(cache.clips), size=batch, p=probs)  # noqa: NPY002
    out = np.zeros((batch, samples), np.float32)
    for row, i in enumerate(picks):
        clip = cache.clips[int(i)]
        start = int(np.random.randint(0, max(1, clip.length - samples + 1)))  # noqa: NPY002
        gain = 10.0 ** (-float(np.random.uniform(0.0, gain_db)) / 20.0)  # noqa: NPY002
        out[row] = cache.read(clip, start, samples) * gain
    return torch.from_numpy(out)


# --------------------------------------------------------------------------- sampling and validation material


def validation_set(cache: AudioCache, *, segments: int, segment_samples: int, clips: int,
                   clip_samples: int, seed: int = 1234) -> tuple[torch.Tensor, list[torch.Tensor], list[str]]:
    """Fixed validation material: ``segments`` segments ``[N, segment_samples]`` drawn with the training
    sampler's weights (a private seed), and up to ``clips`` speech clips (the first ``clip_samples`` of
    the longest file of as many different groups as possible) for STOI and PESQ, with their paths."""
    rng = np.random.default_rng(seed)
    probs = sampling_weights(cache.clips)
    seg = np.zeros((segments, segment_samples), np.float32)
    for row, i in enumerate(rng.choice(len(cache.clips), size=segments, p=probs)):
        c = cache.clips[int(i)]
        start = int(rng.integers(0, max(1, c.length - segment_samples + 1)))
        seg[row] = cache.read(c, start, segment_samples)
    speech = [c for c in cache.clips if c.kind == "speech" and c.length >= min(clip_samples, 3 * SAMPLE_RATE)]
    by_group: dict[str, list[Clip]] = defaultdict(list)
    for c in speech:
        by_group[f"{c.source}/{c.group}"].append(c)
    chosen: list[Clip] = []
    pools = [sorted(v, key=lambda c: (-c.length, c.path)) for _, v in sorted(by_group.items())]
    while len(chosen) < clips and any(pools):  # round robin over groups, longest files first
        for pool in pools:
            if pool and len(chosen) < clips:
                chosen.append(pool.pop(0))
    hop = HOP_LENGTH
    waves = []
    for c in chosen:
        n = min(c.length, clip_samples) // hop * hop
        waves.append(torch.from_numpy(cache.read(c, 0, n)))
    return torch.from_numpy(seg), waves, [c.path for c in chosen]
