"""Demo steps: tokenize the example images and sounds and rebuild them; one interleaved stream."""

from __future__ import annotations

import colorsys
import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mmtok.core.command_output import counted
from mmtok.core.errors import MmtokError
from mmtok.core.metrics import psnr as image_psnr
from mmtok.core.metrics import ssim as image_ssim
from mmtok.core.module_io import training_files
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.demo.plots import mel_pair, save_png, save_wav, usage_plot
from mmtok.demo.state import media_file, vocab_words
from mmtok.stream.vocab import Modality

if TYPE_CHECKING:
    from mmtok.demo.state import Demo


def _files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes``: not its subfolders, nor hidden files (``._photo.jpg``,
    the resource forks macOS leaves beside a copied file, are not pictures)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and media_file(p))


def _readable(d: Demo, what: str, files: list[Path], load: Callable[[Path], Any]) -> list[tuple[Path, Any]]:
    """``(file, load(file))`` for each of ``files`` that loads; the others are left out, each named with its
    problem in :attr:`Demo.skipped` (the page says so), or a :class:`DemoError` when none loads."""
    from mmtok.core.errors import DemoError

    loaded = []
    for f in files:
        try:
            loaded.append((f, load(f)))
        except (MmtokError, OSError) as e:
            d.skipped = (*d.skipped, (f.name, str(e)))
    if not loaded:
        raise DemoError(f"demo data folder {d.data}: none of its {what} can be read ("
                        + "; ".join(f"{n}: {e}" for n, e in d.skipped[-len(files):]) + "); fix or replace them")
    return loaded


def saved_as(folder: str, f: Path, ending: str) -> str:
    """The file (in the demo's folder) that shows input ``f`` as it went in or came back: named by ``f``'s whole
    name, as ``mmtok encode`` names its code files, so two inputs (``coffee.jpg``, ``coffee.png``) never share
    one, and no input's name is one of the demo's own files (``image_usage.png``).

    >>> saved_as("images", Path("examples/data/coffee.jpg"), ".tokens.png")
    'images/coffee.jpg.tokens.png'
    """
    return f"{folder}/{f.name}{ending}"


UNSEEN, SEEN, SAME_NAME = "never seen in training", "training image", "a training image has its name"


def training_match(tok: Any, *, shipped_examples: bool) -> Callable[[Path], str]:
    """How an image relates to the files ``tok``'s provenance says it trained on: :data:`SEEN` for one of those
    files on disk (their names are relative to the trainer's ``--data`` folder, or the manifest's folder), or,
    among the shipped examples, for a resized copy of a training picture (they keep its name:
    ``examples/data/README.md``); :data:`SAME_NAME` for another file whose name a training file has (whether it
    is the same picture cannot be told); :data:`SEEN` too for a byte-for-byte copy, under any name, of a training
    file on disk or of a shipped example that is a training picture; :data:`UNSEEN` otherwise."""
    from mmtok.demo.state import example_data

    recorded = training_files(tok)
    on_disk, stems = recorded.on_disk(), {Path(n).stem for n in recorded.names}
    copies: set[str] = set()

    def training_digests() -> set[str]:  # read once, on the first file that needs it
        if not copies:
            try:
                examples = [p for p in example_data().iterdir() if p.stem in stems and media_file(p)]
            except FileNotFoundError:
                examples = []
            copies.update(_digest(p) for p in [*examples, *on_disk] if p.is_file())
            copies.add("")  # read
        return copies

    def match(f: Path) -> str:
        if f.resolve() in on_disk:
            return SEEN
        if f.stem in stems:
            return SEEN if shipped_examples else SAME_NAME
        return SEEN if _digest(f) in training_digests() else UNSEEN

    return match


def _digest(f: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(f.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def images_step(d: Demo) -> str:
    tok = d.image
    files = _files(d.data, IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {d.data}")
    seen = training_match(tok, shipped_examples=d.shipped_examples)
    rows, cards, codes_all = [], [], []
    (d.out / "images").mkdir(exist_ok=True)
    loaded = _readable(d, "images", files, lambda f: _timed(tok.preprocess, f))
    d.images = [f for f, _ in loaded]
    for f, (x, pre_s) in tqdm(loaded, desc="images", leave=False, disable=not d.progress):
        x = x.to(d.device)  # [3, 256, 256]: what encode sees
        t0 = time.perf_counter()
        codes = tok.encode(x)  # [16, 16]
        enc_ms = (time.perf_counter() - t0 + pre_s) * 1000  # reading and resizing the file included
        rec = tok.decode(codes).float()
        psnr, ssim = float(image_psnr(rec, x)), float(image_ssim(rec, x))
        codes_all.append(codes.reshape(-1).cpu())
        seen_as, back_as = saved_as("images", f, ".png"), saved_as("images", f, ".tokens.png")
        save_png(d.out / seen_as, x)
        save_png(d.out / back_as, rec)
        split = seen(f)
        rows.append([f.name, split, f"{codes.shape[0]}×{codes.shape[1]}", int(codes.unique().numel()),
                     round(psnr, 2), round(ssim, 3), round(enc_ms, 1)])
        cards.append(d.report.pair((seen_as, "as the tokenizer sees it"),
                                   (back_as, f"from its {codes.numel()} tokens"),
                                   f"<b>{html.escape(f.name)}</b> ({split}): PSNR {psnr:.2f} dB, SSIM {ssim:.3f}",
                                   width=256))
    name, split = next((r[:2] for r in rows if r[1] == UNSEEN), rows[0][:2])
    d.overview += [(saved_as("images", Path(name), ".png"),
                    "an image" + (" the tokenizer never saw" if split == UNSEEN else "")),
                   (saved_as("images", Path(name), ".tokens.png"), "the same from its tokens")]
    counts = _round_trip_section(
        d, "2. Images → tokens → images",
        f"The shipped image tokenizer (models/image: {tok.codebook_size} codes, downsampling {tok.downsample}) on "
        f"the example images in {d.data_label}, each original beside its reconstruction. Both measures compare the "
        "reconstruction with exactly what the encoder saw (tok.preprocess): PSNR (peak signal-to-noise ratio, "
        "higher is closer) and SSIM (structural similarity, 1 = identical).",
        ["file", "tokenizer training", "grid", "distinct codes", "PSNR (dB)", "SSIM", "encode ms"], rows, cards,
        "image", "images", codes_all, int(tok.codebook_size), _skipped_note(d, files))
    psnrs = [r[4] for r in rows]
    unseen = [r[4] for r in rows if r[1] == UNSEEN]
    d.figure("image_ssim", round(float(np.mean([r[5] for r in rows])), 4), "SSIM",
             "images: mean SSIM of decode(encode(x)) vs x")
    d.figure("image_psnr_db", round(float(np.mean(psnrs)), 3), "dB", "images: mean PSNR of decode(encode(x)) vs x")
    if unseen:
        d.figure("image_psnr_unseen_db", round(float(np.mean(unseen)), 3), "dB",
                 "images: mean PSNR on images the tokenizer never saw")
    d.figure("image_tokens", int(codes_all[0].numel()), "tokens",
             "images: tokens per 256×256 image (the shipped tokenizer's config fixes it)")
    d.figure("image_codes_used", int((counts > 0).sum()), "codes", f"images: distinct codes over the examples "
             f"(of {tok.codebook_size})")
    return (f"{counted(len(rows), 'image')}, {codes_all[0].numel()} tokens each, mean PSNR {np.mean(psnrs):.2f} dB, "
            f"SSIM {np.mean([r[5] for r in rows]):.3f}{_skipped_words(d, files)}")


def _timed(fn: Callable[[Path], Any], f: Path) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(f), time.perf_counter() - t0


def _skipped(d: Demo, files: list[Path]) -> list[tuple[str, str]]:
    names = {f.name for f in files}
    return [(n, e) for n, e in d.skipped if n in names]


def _skipped_note(d: Demo, files: list[Path]) -> str:
    """The page's note on the files of ``files`` left out because they cannot be read ('' when none was)."""
    left = _skipped(d, files)
    return ("Left out, as they cannot be read: " + "; ".join(f"{n} ({e})" for n, e in left) + ".") if left else ""


def _skipped_words(d: Demo, files: list[Path]) -> str:
    left = _skipped(d, files)
    return f"; {len(left)} left out, unreadable: {', '.join(n for n, _ in left)}" if left else ""


def _round_trip_section(d: Demo, title: str, intro: str, header: list[str], rows: list[list[Any]],
                        cards: list[str], kind: str, what: str, codes_all: list[torch.Tensor],
                        codebook_size: int, skipped: str = "") -> torch.Tensor:
    """Steps 2 and 3 end alike: a usage plot of all codes, then the section (text, table, cards, the plot).

    Returns the code counts over all examples."""
    counts = torch.bincount(torch.cat(codes_all), minlength=codebook_size)
    usage_plot(d.out / f"{kind}_usage.png", {f"example {what}": counts},
               title=f"{kind} codebook ({codebook_size} codes): uses on {len(rows)} example {what}")
    d.report.section(
        title,
        d.report.text(intro),
        *([d.report.note(skipped)] if skipped else []),
        d.report.table(header, rows),
        d.report.grid(cards),
        d.report.grid([d.report.image(f"{kind}_usage.png", f"codebook usage over these {what}", width=560)]),
    )
    return counts


STREAM_CHUNK = 5  # tokens per chunk of the demo's streamed decode (0.1 s at 50 tokens/s)


def audio_step(d: Demo) -> str:
    from mmtok.audio.io import load_audio

    tok = d.audio
    files = _files(d.data, AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio ({', '.join(sorted(AUDIO_SUFFIXES))}) in {d.data}")
    (d.out / "audio").mkdir(exist_ok=True)
    rows, cards, codes_all, diffs = [], [], [], []
    sr = int(tok.sample_rate)
    loaded = _readable(d, "sounds", files, lambda f: load_audio(f, target_rate=sr))  # mono at the tokenizer's rate
    d.sounds = [f for f, _ in loaded]
    for f, wave in tqdm(loaded, desc="audio", leave=False, disable=not d.progress):
        t0 = time.perf_counter()
        codes = tok.encode(wave, sample_rate=sr)
        enc_ms = (time.perf_counter() - t0) * 1000
        mel = tok.features(wave, sample_rate=sr).cpu()
        mel_back = tok.decode_features(codes).cpu()
        n = min(mel.shape[1], mel_back.shape[1])
        rel = float((mel[:, :n] - mel_back[:, :n]).abs().mean() / (mel.max() - mel.min()).clamp_min(1e-6))
        t0 = time.perf_counter()
        back = tok.decode(codes).cpu()
        dec_s = time.perf_counter() - t0
        stream_s, stream_diff = _streamed(tok, codes, back)
        heard_as, back_as = saved_as("audio", f, ".wav"), saved_as("audio", f, ".tokens.wav")
        mel_as = saved_as("audio", f, ".mel.png")
        save_wav(d.out / heard_as, wave, sr)
        save_wav(d.out / back_as, back, sr)
        mel_pair(d.out / mel_as, mel, mel_back, title=f"{f.name}: log-mel before / after",
                 hop_seconds=tok.cfg.hop_length / sr)
        codes_all.append(codes.reshape(-1).cpu())
        seconds = wave.numel() / sr
        rows.append([f.name, round(seconds, 2), int(codes.numel()), round(rel, 4), round(enc_ms, 1),
                     round(dec_s / seconds, 3), "—" if stream_s is None else round(stream_s / seconds, 3)])
        diffs.append(stream_diff)
        cards.append(d.report.sound_pair(mel_as, (heard_as, f"original ({sr} Hz)"),
                                         (back_as, f"from its {codes.numel()} tokens"),
                                         f"<b>{html.escape(f.name)}</b>", width=480))
    shown = next((f for f in d.sounds if "speech" in f.name), d.sounds[0])
    d.overview.append((saved_as("audio", shown, ".mel.png"), f"{shown.name}: log-mel before / after"))
    d.figure("audio_rel_l1", round(float(np.mean([r[3] for r in rows])), 4), "fraction of range",
             "audio: mean log-mel L1 of the reconstruction, relative to each clip's range")
    d.figure("audio_tokens_per_second", float(tok.tokens_per_second), "tokens/s",
             "audio: token rate (the shipped tokenizer's config fixes it)")
    d.figure("audio_decode_rtf", round(float(np.mean([r[5] for r in rows])), 4), "× the clip's length",
             "audio: time to decode tokens to a waveform, divided by the clip's duration (below 1: faster than "
             "playing it)")
    if tok.decode_lookahead is not None:
        d.figure("audio_stream_max_diff", float(f"{max(diffs):.3g}"), "",
                 f"audio: largest difference between decode_stream ({STREAM_CHUNK} tokens at a time) and decode, "
                 "on a waveform in [-1, 1]")
        d.figure("audio_stream_lookahead_s", round(tok.decode_lookahead / tok.tokens_per_second, 2), "s",
                 "audio: how far a streamed decode's samples run behind the codes (at most)")
    how_back = ("its learned vocoder (a network that turns the decoded log-mel into sound)"
                if getattr(tok, "vocoder", None) is not None else "Griffin-Lim phase reconstruction")
    _round_trip_section(
        d, "3. Sound → tokens → sound",
        f"The shipped audio tokenizer (models/audio: {tok.tokens_per_second} tokens per second, "
        f"{tok.codebook_size} codes) on the example sounds: log-mel spectrograms before and after, and both as "
        f"sound. The waveform comes back through {how_back}; a sound louder than full scale is "
        "turned down to fit, never clipped. Log-mel error: the mean absolute difference of the two spectrograms, "
        "as a fraction of the original's range. Decode time: seconds to rebuild the waveform per second of sound, "
        f"whole and streamed ({STREAM_CHUNK} tokens at a time, as a model generating them would hand them over).",
        ["file", "seconds", "tokens", "log-mel error", "encode ms", "decode time per second of sound",
         "streamed decode time per second"], rows, cards,
        "audio", "sounds", codes_all, int(tok.codebook_size), _skipped_note(d, files))
    return (f"{counted(len(rows), 'clip')} at {tok.tokens_per_second} tokens/s, mean log-mel error "
            f"{np.mean([r[3] for r in rows]):.1%} of each clip's range{_skipped_words(d, files)}")


def _streamed(tok: Any, codes: torch.Tensor, whole: torch.Tensor) -> tuple[float | None, float]:
    """Seconds to decode ``codes`` through ``decode_stream`` in chunks of ``STREAM_CHUNK`` tokens, and the
    largest difference from the whole decode (None and 0 for a tokenizer that cannot stream)."""
    if tok.decode_lookahead is None:
        return None, 0.0
    t0 = time.perf_counter()
    joined = torch.cat(list(tok.decode_stream(codes.split(STREAM_CHUNK)))).cpu()
    return time.perf_counter() - t0, float((joined - whole).abs().max())


# --------------------------------------------------------------------------- the interleaved stream

_SPECIAL_NAMES = ("<bos>", "<eos>", "<boi>", "<eoi>", "<eol>", "<boa>", "<eoa>", "<bov>", "<eov>", "<eof>")


def _code_colors(tok: Any, codes: torch.Tensor) -> np.ndarray:
    """The mean colour (uint8 ``[h, w, 3]``) of each patch of an image decoded from ``codes`` ``[h, w]``."""
    img = tok.decode(codes).float().clamp(0, 1)  # [3, H, W]
    h, w = codes.shape
    patch = img.reshape(3, h, img.shape[1] // h, w, img.shape[2] // w).mean(dim=(2, 4))  # [3, h, w]
    return (patch.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def stream_html(il: Any, ids: torch.Tensor, colors: list[np.ndarray]) -> str:
    """The stream as HTML: text as text, markers as labels, image/video codes as cells in their patch's
    colour (rows break at ``<eol>``), audio codes as bars shaded by code."""
    v = il.vocab
    special = {v.id(n): n for n in _SPECIAL_NAMES}
    ranges = {name: v.range(name) for name in v.media}
    out: list[str] = []
    text: list[int] = []
    grid_k, frame, row, col = -1, 0, 0, 0

    def flush() -> None:
        if text:
            out.append(f'<span class="t">{html.escape(il.text.decode(text, errors="replace"))}</span>')
            text.clear()

    for tok in ids.tolist():
        if tok < v.text_size:
            text.append(tok)
            continue
        flush()
        if tok in special:
            name = special[tok]
            if name in ("<boi>", "<bov>"):
                grid_k, frame, row, col = grid_k + 1, 0, 0, 0
            if name == "<eol>":
                row, col = row + 1, 0
                out.append('<span class="sp" title="&lt;eol&gt;">⏎</span><br>')
                continue
            if name == "<eof>":
                frame, row, col = frame + 1, 0, 0
            out.append(f'<span class="sp">{html.escape(name)}</span>')
            if name in ("<boi>", "<bov>", "<eof>"):
                out.append("<br>")
            continue
        name = next((m for m, r in ranges.items() if tok in r), None)
        if name is None:  # another special id (<pad>, reserved)
            out.append(f'<span class="sp">{html.escape(v.token(tok))}</span>')
            continue
        local = tok - ranges[name].start
        if name in ("image", "video") and 0 <= grid_k < len(colors):
            c = colors[grid_k]
            rgb = c[frame, row, col] if c.ndim == 4 else c[row, col]
            col += 1
            out.append(f'<span class="c" title="{name} code {local}" style="background:rgb({rgb[0]},{rgb[1]},{rgb[2]})">'
                       "</span>")
        else:
            r, g, b = (int(255 * x) for x in colorsys.hls_to_rgb((local * 0.618034) % 1.0, 0.55, 0.65))
            out.append(f'<span class="a" title="{name} code {local}" style="background:rgb({r},{g},{b})"></span>')
    flush()
    return '<div class="stream">' + "".join(out) + "</div>"


def _has_sound(video: Path) -> bool:
    """Whether ``video`` has a sound track (the stream then carries it beside the frames)."""
    import av

    try:
        with av.open(str(video)) as container:
            return bool(container.streams.audio)
    except (OSError, av.FFmpegError):  # unreadable: the stream's encoder says what is wrong
        return False


def stream_step(d: Demo) -> str:
    from mmtok.stream.interleave import Interleaver, pretty
    from mmtok.video.tokenizer import VideoTokenizer

    images, sounds = d.images, d.sounds  # those steps 2 and 3 could read
    videos = _files(d.data, VIDEO_SUFFIXES) if d.has_video else []
    sound, stream, enc_s = False, None, 0.0
    vt = VideoTokenizer(d.image, fps=1.0)
    il = Interleaver(None, image=d.image, audio=d.audio, video=vt)
    # the shipped examples' speech clips are named so; in a --data folder a name says nothing of what it holds
    speech = next((s for s in sounds if "speech" in s.name), None) if d.shipped_examples else None
    said = " Someone reads a sentence: " if speech is not None else " A sound: "
    head: list[Any] = ["A photo: ", {"image": images[0]}, said, {"audio": speech or sounds[0]}]
    for video in [*videos, None]:  # the first video that can be read, else none
        if video is not None:
            sound = _has_sound(video)
        doc = head + ([f" And {'a video with its soundtrack' if sound else 'a silent video'}, two seconds at a "
                       "time: ", {"video": video, "chunk_seconds": 2.0}] if video is not None else []) + [" The end."]
        t0 = time.perf_counter()
        try:
            stream = il.encode(doc)
        except MmtokError as e:
            if video is None:
                raise
            d.skipped = (*d.skipped, (video.name, str(e)))
            continue
        enc_s = time.perf_counter() - t0
        break
    assert stream is not None  # the document without a video was encoded, or its error raised
    back = il.decode(stream)
    again = il.encode(back)
    exact = bool(torch.equal(again.ids, stream.ids))
    colors: list[np.ndarray] = []
    for seg in back:
        if "image_codes" in seg:
            colors.append(_code_colors(d.image, seg["image_codes"]))
        elif "video_codes" in seg:
            colors.append(np.stack([_code_colors(d.image, f) for f in seg["video_codes"]]))
    counts = {m.name.lower(): int((stream.modality == m.value).sum()) for m in Modality}
    rows = [[k, v] for k, v in counts.items() if v]
    d.figure("stream_tokens", len(stream), "tokens", "stream: tokens in the interleaved example document")
    d.figure("stream_round_trip_exact", int(exact), "1 = yes", "stream: encode(decode(stream)) gives the same ids")
    d.report.section(
        "4. One interleaved stream",
        d.report.text(f"Text (UTF-8 bytes), an image, {'a spoken sentence' if speech is not None else 'a sound'}"
                      f"{(' and a video with sound' if sound else ' and a silent video') if video else ''} "
                      f"in one sequence of {len(stream):,} ids. Its vocabulary has {vocab_words(il.vocab)} "
                      f"(fingerprint {il.vocab.fingerprint[:12]}…); the video frames are coded by the image "
                      "tokenizer but get a range of their own. Image and video codes are drawn as cells in "
                      "the colour of their decoded patch, each row ended by ⏎ (<eol>); audio codes as bars."),
        *([d.report.note(_skipped_note(d, videos))] if _skipped(d, videos) else []),
        d.report.pre(pretty(stream)),
        d.report.table(["modality", "tokens"], rows),
        stream_html(il, stream.ids, colors),
        d.report.note(f"Decoding the stream and encoding it again gives {'the same' if exact else 'DIFFERENT'} ids. "
                      f"Built in {enc_s:.2f} s."),
    )
    return (f"{len(stream):,} ids ({', '.join(f'{k} {v}' for k, v in rows)}), exact round trip: {exact}"
            f"{_skipped_words(d, videos)}")
