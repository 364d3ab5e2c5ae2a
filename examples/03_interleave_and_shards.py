"""Interleave text and images into one stream, write a corpus to shards, read training windows.

Run: python examples/03_interleave_and_shards.py   (writes toy-corpus/ and toy-shards/ here)
"""

import mmtok
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.synth.toy import color_shapes_corpus

# 1. one document -> one stream of ids, and back
tok = mmtok.load("image")
il = mmtok.Interleaver(None, image=tok)  # byte text + the image codes in one id space
corpus = color_shapes_corpus("toy-corpus", n_docs=40, seed=0, size=64)  # captioned 64×64 pictures
tok.cfg.size_policy = "native"  # keep them small: 64×64 -> 4×4 codes
stream = il.encode(["a picture: ", {"image": "toy-corpus/img/00000.png"}, " (the first one)"])
print(mmtok.pretty(stream), f"-> {len(stream)} ids")
print("ids:", stream.ids[:24].tolist(), "...")
print("modalities:", stream.modality[:24].tolist(), "...")
assert il.decode(stream)[0]["text"] == "a picture: "

# 2. a JSONL corpus -> shards on disk (resumable; try killing it and running it again)
manifest = mmtok.tokenize_corpus(corpus, "toy-shards", tokenizers=TokenizerSpec(image="mmtok.pretrained:native_image_tokenizer"))
print(f"{manifest['docs']} documents, {manifest['tokens']['total']} tokens "
      f"({manifest['tokens']['image']} image, {manifest['tokens']['text']} text) in {len(manifest['shards'])} shard(s)")

# 3. shards -> fixed-length training windows with document boundaries
ds = mmtok.PackedDataset("toy-shards", seq_len=64, seed=0)
w = ds[0]
print(f"{len(ds)} windows; window 0 holds documents {sorted(set(w['doc'].tolist()))}, "
      f"{int(w['loss_weight'].gt(0).sum())} weighted targets")
