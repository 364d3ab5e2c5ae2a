"""Train a VQ codebook on generated vectors, then encode, decode, save and load it.

Run: python examples/00_vector_quantizer.py   (writes my-vq/ here)
"""

from pathlib import Path

import torch

import mmtok
from mmtok.synth.clustered import make_clustered

torch.manual_seed(0)
data = make_clustered(60_000, 32, 2048)  # [60000, 32]: tight clusters, hard for naive VQ
train, held_out = data[:50_000], data[50_000:]

vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=32, codebook_size=512))
for _ in range(50):  # training mode: k-means init, EMA updates, dead-code restarts
    batch = train[torch.randint(0, len(train), (4096,))]
    result = vq(batch)
print(f"last training batch: usage {result.usage:.1%}, perplexity {result.perplexity:.0f}")

vq.eval()
vq.reset_stats()  # usage_stats counts every vector quantized since: the held-out ones only from here
codes = vq.encode(held_out)  # [10000] int64
recon = vq.decode(codes)  # [10000, 32]
stats = vq.usage_stats()
print(f"held-out: codes {tuple(codes.shape)}, usage {stats.usage:.1%}, "
      f"MSE {(recon - held_out).pow(2).mean():.4f}")

folder = Path("my-vq")  # in the current folder; saving again replaces it
mmtok.save(vq, folder, provenance={"data": "make_clustered(60000, 32, 2048), seed 0"})
again = mmtok.load(folder)
assert torch.equal(again.encode(held_out), codes)
print(f"saved and reloaded {folder}: identical codes")
