"""Tokenize a picture with the shipped image tokenizer and get it back from 256 codes.

Run: python examples/01_tokenize_image.py   (writes original.png and reconstruction.png here)
"""

import numpy as np
import torch
from PIL import Image, ImageDraw

import mmtok

# a picture to tokenize: gradients, shapes and text (any path, PIL image or array works too)
img = Image.new("RGB", (320, 256), (240, 235, 220))
draw = ImageDraw.Draw(img)
for k in range(8):
    draw.ellipse([20 + 35 * k, 40 + 10 * k, 80 + 35 * k, 100 + 10 * k], fill=(30 * k, 120, 255 - 30 * k))
draw.rectangle([30, 170, 290, 230], fill=(40, 60, 90))
draw.text((50, 190), "mmtok: 256 tokens", fill=(250, 250, 250))
img.save("original.png")

tok = mmtok.load("image")  # models/image: 256×256 -> 16×16 codes from a 1,280-code book
codes = tok.encode("original.png")  # int64 [16, 16]
recon = tok.decode(codes)  # float [3, 256, 256] in [0, 1]
target = tok.preprocess("original.png")  # exactly what encode saw (resized, center-cropped)

mse = torch.mean((recon - target) ** 2).item()
print(f"codes {tuple(codes.shape)} from a codebook of {tok.codebook_size}; "
      f"{codes.unique().numel()} distinct codes; PSNR {10 * np.log10(1 / mse):.1f} dB")
Image.fromarray((recon.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(
    "reconstruction.png")
print("wrote original.png and reconstruction.png")
