"""Demo steps: a captioned corpus of pictures and tones -> shards -> a tiny transformer -> sampled media."""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from mmtok.context.growth import CpuShare
from mmtok.demo.plots import save_png, save_wav
from mmtok.synth.toy import (
    COLORS,
    PITCHES,
    SHAPES,
    caption,
    dominant_color,
    dominant_pitch,
    tone_caption,
)

if TYPE_CHECKING:
    from mmtok.demo.state import Demo

# one shape per colour never appears in training; the model is asked to draw exactly those
HELD_OUT = [(color, SHAPES[(2 * i + 1) % len(SHAPES)]) for i, color in enumerate(COLORS)]


def corpus_step(d: Demo) -> str:
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.tokenizer_spec import TokenizerSpec
    from mmtok.synth.toy import color_shapes_corpus, tones_corpus

    n_img, n_tone = (240, 120) if d.fast else (1500, 300)
    folder = d.out / "corpus"
    pictures = color_shapes_corpus(folder, n_docs=n_img, seed=d.seed, held_out=HELD_OUT)
    tones = tones_corpus(folder, n_docs=n_tone, seed=d.seed + 1)
    lines = pictures.read_text().splitlines() + tones.read_text().splitlines()
    order = np.random.default_rng(d.seed).permutation(len(lines))
    docs = folder / "all.jsonl"
    docs.write_text("\n".join(lines[i] for i in order) + "\n")
    d.spec = TokenizerSpec(image="mmtok.pretrained:native_image_tokenizer", audio=d.audio_name)
    t0 = time.perf_counter()
    manifest = tokenize_corpus(docs, d.out / "shards", tokenizers=d.spec, progress=d.progress,
                               restart=True)  # the shards of an earlier demo's corpus are the demo's to replace
    seconds = time.perf_counter() - t0
    tokens = manifest["tokens"]
    d.figure("corpus_docs", int(manifest["docs"]), "documents", "corpus: documents tokenized into shards")
    d.figure("corpus_tokens", int(tokens["total"]), "tokens", "corpus: tokens in the shards")
    d.figure("corpus_docs_per_s", round(manifest["docs"] / seconds, 1), "documents/s", "corpus: tokenizing speed")
    example = json.loads(lines[0])["segments"]
    d.report.section(
        "5. A corpus in shards",
        d.report.text(f"A generated task: {n_img} captioned 64×64 pictures (\"a circle in red\" + the picture, as "
                      f"4×4 image codes) and {n_tone} captioned tones (\"a high tone\" + 0.4 s of sound, as "
                      f"20 audio codes). These combinations of colour and shape never appear: "
                      f"{', '.join(caption(c, s) for c, s in HELD_OUT)}. One JSONL line per document, "
                      f"e.g. {json.dumps(example)}; mmtok tokenize writes them to atomic shards."),
        d.report.table(["documents", "skipped", "shards", "tokens", "text", "special", "image", "audio",
                        "seconds"],
                       [[manifest["docs"], len(manifest["skipped"]), len(manifest["shards"]), tokens["total"],
                         tokens["text"], tokens["special"], tokens["image"], tokens["audio"], round(seconds, 2)]]),
    )
    return f"{manifest['docs']} documents, {tokens['total']:,} tokens in {len(manifest['shards'])} shard(s)"


def train_step(d: Demo) -> str:
    from mmtok.lm.runs import LOG_NAME
    from mmtok.lm.train import train
    from mmtok.lm.train_config import TrainConfig

    steps = 90 if d.fast else 600
    cfg = TrainConfig(data=str(d.out / "shards"), out=str(d.out / "run"), preset="tiny", seq_len=64,
                      batch_size=16, steps=steps, warmup=min(30, steps // 5), lr=3e-3, save_every=steps,
                      seed=d.seed, device=str(d.device))
    t0 = time.perf_counter()
    with CpuShare() as share, contextlib.redirect_stdout(io.StringIO()):  # the trainer's header: the page says it
        train(cfg, progress=d.progress, overwrite=True)  # the demo replaces its own previous run
    seconds = time.perf_counter() - t0
    rows = [json.loads(x) for x in (d.out / "run" / LOG_NAME).read_text().splitlines() if x.strip()]
    last = rows[-10:]
    first_loss, last_loss = rows[0]["loss"], float(np.mean([r["loss"] for r in last]))
    tok_s = float(np.median([r["tokens_per_s"] for r in rows[len(rows) // 5:]]))
    d.figure("train_loss_first", round(first_loss, 4), "nats", "training: loss at the first step")
    d.figure("train_loss_last", round(last_loss, 4), "nats", "training: mean loss over the last 10 steps")
    busy = f"; not reliable, so not reported: {share.describe()} while it ran" if share.busy else ""
    d.figure("train_tokens_per_s", round(tok_s, 1), "tokens/s",
             f"training: median throughput on {d.device_label}{busy}", reliable=not share.busy)
    per = {m: round(float(np.mean([r[f"loss_{m}"] for r in last if f"loss_{m}" in r])), 4)
           for m in ("text", "image", "audio") if any(f"loss_{m}" in r for r in last)}
    n_params, size = _size(d)
    parts = [d.report.text(f"The tiny preset with {size}. Trained for {steps} steps of 16 windows of 64 tokens "
                           f"on {d.device_label}: {seconds:.0f} s, loss {first_loss:.2f} → {last_loss:.2f} nats. "
                           "Loss per modality over the last 10 steps: "
                           + ", ".join(f"{m} {v:.3f}" for m, v in per.items()) + ".")]
    if (d.out / "run" / "loss.png").is_file():
        parts.append(d.report.grid([d.report.image("run/loss.png", "loss per modality (run/log.jsonl)", width=620)]))
        d.overview.append(("run/loss.png", "training loss per modality"))
    d.report.section("6. Training a tiny transformer", *parts)
    # the median step's throughput, which a stalled step does not drag down; the wall clock holds setup and stalls
    return (f"tiny preset, {n_params} parameters: {steps} steps in {seconds:.0f} s (setup included), loss "
            f"{first_loss:.2f} -> {last_loss:.2f}, {tok_s:,.0f} tokens/s in the median step"
            + (f" (not reliable: {share.describe()})" if share.busy else ""))


def _size(d: Demo) -> tuple[str, str]:
    """The trained model's size in words: one parameter count (embedding included) and what makes it up."""
    from mmtok.demo.state import vocab_words
    from mmtok.lm.runs import load_run

    model, vocab, _ = load_run(d.out / "run")
    total, embed = model.num_params(non_embedding=False), model.embed.weight.numel()
    shared = "shared with the output layer" if model.cfg.tie_embeddings else "plus an output layer of the same size"
    return f"{total / 1e6:.2f} M", (
        f"{total / 1e6:.2f} M parameters ({(total - embed) / 1e6:.2f} M in the transformer blocks and "
        f"{embed / 1e6:.2f} M in the token embedding, {shared}) over a vocabulary of {vocab_words(vocab)}; "
        "the corpus has no video, so unlike the stream of step 4 there is no video range")


def sample_step(d: Demo) -> str:
    from mmtok.data.tokenizer_spec import build_interleaver
    from mmtok.lm.runs import load_run
    from mmtok.lm.sample import generate

    model, _, _ = load_run(d.out / "run", device=d.device)
    il = build_interleaver(d.spec)
    per = 1 if d.fast else 4
    (d.out / "samples").mkdir(exist_ok=True)
    img_rows, cards, hits, first = [], [], 0, ""
    for k, (color, shape) in enumerate(tqdm(HELD_OUT, desc="sample images", leave=False, disable=not d.progress)):
        prompt = caption(color, shape)
        outs = generate(model, il, prompt, force="image", num_samples=per, image_grid=(4, 4), seed=d.seed + k,
                        temperature=0.7, top_k=20)
        for j, ids in enumerate(outs):
            pic = il.decode(ids, media=True, partial=True)[-1]["image"]
            got = dominant_color(pic)
            hits += got == color
            name = f"samples/{color}-{shape}-{j}.png"
            save_png(d.out / name, pic, scale=2)
            first = first or name
            img_rows.append([prompt, got, "yes" if got == color else "no"])
            cards.append(d.report.image(name, f"“{prompt}” → {got}", width=128, pixel=True))
    n_img = len(img_rows)
    d.overview.append((first, "sampled for an unseen caption"))
    snd_rows, snd_cards, snd_hits, same = _sample_sounds(d, model, il, per)
    d.figure("sample_image_color_match", round(hits / n_img, 3), "fraction",
             "sampling: pictures for never-seen captions with the named dominant colour")
    d.figure("sample_tone_pitch_match", round(snd_hits / len(snd_rows), 3), "fraction",
             "sampling: tones with the named pitch")
    d.report.section(
        "7. Sampling media from text",
        d.report.text("Prompted with a caption, the sampler opens <boi> (or <boa>) and a grammar masks the logits "
                      "so that only codes, <eol> at the row width and <eoi> after the last row can follow: every "
                      "sample decodes. Temperature 0.7, drawing among the 20 likeliest ids (top-k 20). The picture captions "
                      "below never appeared in training; the tone captions did."),
        d.report.grid(cards),
        d.report.table(["prompt", "dominant colour", "match"], img_rows),
        d.report.grid(snd_cards),
        *([d.report.note(same)] if same else []),
        d.report.text("The level column is the sample's RMS in dB full scale; the shipped audio tokenizer returns "
                      "the toy tones within about 9 dB of their level (models/audio/README.md)."),
        d.report.table(["prompt", "codes", "pitch heard", "level dBFS", "match"], snd_rows),
    )
    return (f"colour matches {hits}/{n_img} pictures for unseen captions; pitch matches {snd_hits}/{len(snd_rows)} "
            "tones")


def _sample_sounds(d: Demo, model: Any, il: Any, per: int) -> tuple[list[list[Any]], list[str], int, str]:
    """``per`` tones sampled for each pitch caption: table rows, players (one per distinct sample), pitch
    hits, and a sentence on samples that came out identical (empty when none did)."""
    from mmtok.lm.sample import generate

    sr = int(il.audio.sample_rate)
    rows: list[list[Any]] = []
    players, repeats, hits = [], [], 0
    seen: dict[tuple[int, ...], str] = {}  # codes -> the first caption that gave them
    for k, pitch in enumerate(tqdm(list(PITCHES), desc="sample sounds", leave=False, disable=not d.progress)):
        prompt = tone_caption(pitch)
        outs = generate(model, il, prompt, force="audio", num_samples=per, audio_tokens=(10, 40),
                        seed=d.seed + 100 + k, temperature=0.7, top_k=20)
        groups: dict[tuple[int, ...], list[Any]] = {}  # codes -> [first sample, how many, segment, pitch heard]
        for j, ids in enumerate(outs):
            seg = il.decode(ids, media=True, partial=True)[-1]
            codes = tuple(seg["audio_codes"].tolist())
            got = dominant_pitch(seg["audio"], sr)
            hits += got == pitch
            wave = seg["audio"].float()
            level = 20.0 * math.log10(max(float(wave.pow(2).mean().sqrt()), 1e-9))  # dB full scale (RMS)
            rows.append([prompt, len(codes), got, f"{level:.0f}", "yes" if got == pitch else "no"])
            if codes in groups:
                groups[codes][1] += 1
            else:
                groups[codes] = [j, 1, seg, got]
        for codes, (j, n, seg, got) in groups.items():
            name = f"samples/{pitch}-{j}.wav"
            save_wav(d.out / name, seg["audio"], sr)
            players.append(d.report.audio(name, f"“{prompt}” → {got}" + (f" (×{n}: identical samples)" if n > 1
                                                                          else "")))
            if n > 1:
                repeats.append(f"{n} of the {per} samples for “{prompt}” are the same {len(codes)} codes")
            if codes in seen:
                repeats.append(f"“{prompt}” gave the same codes as “{seen[codes]}”")
            seen.setdefault(codes, prompt)
    same = ("Identical samples are played once: " + "; ".join(repeats) + ". At temperature 0.7 among the 20 "
            "likeliest codes, the tiny model puts nearly all its probability on one sequence for such a caption, "
            "so sampling returns it again.") if repeats else ""
    return rows, players, hits, same
