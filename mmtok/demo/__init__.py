"""``mmtok demo``: every capability, end to end, on the example media, into one HTML page.

Steps (each prints a one-line summary; the long ones show a progress bar):

1. the VQ core on clustered vectors next to a naive codebook;
2. the example images through the shipped image tokenizer and back (PSNR);
3. the example sounds through the shipped audio tokenizer and back (log-mel
   before/after, both playable);
4. one interleaved stream of text, an image, speech and a video with sound;
5. a generated corpus of captioned pictures and tones tokenized into shards;
6. a tiny transformer trained on those shards (loss per modality);
7. pictures and tones sampled from captions with grammar-constrained decoding;
8. context budgets for video under every planner preset, and a short measured
   growth run of the transformer's step time and memory, each length estimated
   first and skipped (with the reason) when it would pass the memory budget
   (``max_memory_gb``, 2 GiB by default).

Everything lands in ``out`` (default ``mmtok-demo/``; what an earlier demo wrote
there is removed first, and a folder holding anything else is refused): ``index.html`` (open it in a browser; it loads nothing from the
network), the files it shows (each input's named by its whole file name:
``images/coffee.jpg.png``), ``figures.json`` and ``summary.json``. The example media come from
``examples/data/`` (or ``data=``); ``fast=True`` is a smaller, quicker run.
Uses a GPU when one is available.

:mod:`~mmtok.demo.state` holds what the steps share, :mod:`~mmtok.demo.run` runs
them; each step lives in the module of its theme (``vqcore``, ``media``,
``learn``, ``budget``) and draws with :mod:`~mmtok.demo.plots`.

Imports: anything of mmtok but the command line (the demo is the top of the house).
"""
from __future__ import annotations

from mmtok.demo.run import run_demo as run_demo
from mmtok.demo.state import Demo as Demo
from mmtok.demo.state import check_data as check_data
from mmtok.demo.state import example_data as example_data

__all__ = ["Demo", "check_data", "example_data", "run_demo"]
