"""Train a tiny transformer on captioned pictures, then ask it to draw.

Run: python examples/04_train_tiny.py   (about a minute on a 2-core CPU; writes tiny-corpus/,
tiny-shards/, tiny-run/ and drawn.png)

Run again in the same folder, it starts over: the shards are rewritten (``restart=True``) and the run
in tiny-run/ is replaced (``overwrite=True``; ``mmtok train --overwrite``). To continue a run
instead, pass ``resume=True`` to ``train`` with more ``steps``.
"""

import numpy as np
from PIL import Image

from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.lm.runs import load_run
from mmtok.lm.sample import generate
from mmtok.lm.train import train
from mmtok.lm.train_config import TrainConfig
from mmtok.synth.toy import caption, color_shapes_corpus, dominant_color

spec = TokenizerSpec(image="mmtok.pretrained:native_image_tokenizer")  # shipped tokenizer, 64×64 -> 4×4 codes
corpus = color_shapes_corpus("tiny-corpus", n_docs=300, seed=0, held_out=[("red", "ring")])
tokenize_corpus(corpus, "tiny-shards", tokenizers=spec, restart=True)  # a rerun starts over

cfg = TrainConfig(data="tiny-shards", out="tiny-run", preset="tiny", seq_len=64, batch_size=16,
                  steps=200, warmup=20, lr=3e-3, save_every=200)
train(cfg, overwrite=True)  # log.jsonl, loss.png and a checkpoint in tiny-run/ (a rerun replaces them)

model, vocab, _ = load_run("tiny-run")
il = build_interleaver(spec)
prompt = caption("red", "ring")  # never seen in training
samples = generate(model, il, prompt, force="image", num_samples=4, image_grid=(4, 4), seed=0,
                   temperature=0.7, top_k=20)
pictures = [il.decode(ids, media=True, partial=True)[-1]["image"] for ids in samples]  # [3, 64, 64] each
colours = [dominant_color(p) for p in pictures]
print(f"prompt {prompt!r} (never seen) -> dominant colours of 4 samples: {colours}")
picture = pictures[0]
Image.fromarray((picture.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)).resize((256, 256)).save(
    "drawn.png")
print("wrote drawn.png and tiny-run/loss.png")
