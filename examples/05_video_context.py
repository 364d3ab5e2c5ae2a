"""How much context does video take, and what does that cost?

Run: python examples/05_video_context.py
"""

from mmtok.context import plan

for preset in ("gemini", "lwm", "chameleon", "cosmos", "mmtok"):
    p = plan(10 * 60, preset=preset, model="small")  # ten minutes of video
    fits = [w for w in p.windows if w.fits]
    first = f"fits {fits[0].name}" if fits else "fits no window up to 2M"
    print(f"{preset:>9}: {p.tokens_per_second:7.1f} tokens/s, {p.total_tokens:>9,} tokens for 10 min, {first}; "
          f"KV cache {p.kv_cache_bytes / 2**30:.2f} GiB")

print()
print(plan(60, preset="gemini").table())
