"""How much context does video take, and what does that cost?

Run: python examples/05_video_context.py   (needs PyAV: pip install "mmtok[video]")
"""

from pathlib import Path

import mmtok
from mmtok.context.shipped import plan

# 1. the planner: ten minutes of video under each published tokenizer's rate
for preset in ("gemini", "lwm", "chameleon", "cosmos", "mmtok"):
    p = plan(10 * 60, preset=preset, model="small")  # ten minutes of video
    fits = [w for w in p.windows if w.fits]
    first = f"fits {fits[0].name}" if fits else "fits no window up to 2M"
    print(f"{preset:>9}: {p.tokens_per_second:7.1f} tokens/s, {p.total_tokens:>9,} tokens for 10 min, {first}; "
          f"KV cache {p.kv_cache_bytes / 2**30:.2f} GiB")

print()
print(plan(60, preset="gemini").table())

# 2. a real file: frames at 1 fps through the shipped image tokenizer, each second followed by its sound
clip = Path(__file__).resolve().parent / "data" / "pan.mp4"  # 6 s, with a spoken soundtrack
il = mmtok.Interleaver(None, video=mmtok.load("video"), audio=mmtok.load("audio"))
stream = il.encode(["a clip: ", {"video": clip, "chunk_seconds": 1.0}])
print()
print(mmtok.pretty(stream))
planned = plan(6, preset="mmtok", chunk_seconds=1.0)  # the planner, counting the same 1 s chunks
text = len(il.encode(["a clip: "]))  # <bos>, 8 bytes of text, <eos>
print(f"{len(stream):,} tokens: {text} for the text and {planned.total_tokens:,} for 6 s of video "
      f"({planned.tokens_per_second:.0f} per second), as the planner counts them")
assert len(stream) == text + planned.total_tokens
