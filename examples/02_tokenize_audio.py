"""Tokenize a sound with the shipped audio tokenizer and hear it back.

Run: python examples/02_tokenize_audio.py   (writes tone.wav and tone-decoded.wav here)
"""

import numpy as np
import soundfile as sf
import torch

import mmtok

# two seconds of a rising chirp with a little noise, at 22.05 kHz (resampled on load)
sr = 22050
t = np.arange(2 * sr) / sr
wave = 0.4 * np.sin(2 * np.pi * (300 * t + 400 * t**2)) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
sf.write("tone.wav", wave.astype(np.float32), sr)

tok = mmtok.load("audio")
codes = tok.encode("tone.wav")  # int64 [n]
print(f"{codes.numel()} codes for 2 s ({tok.tokens_per_second} per second), codebook {tok.codebook_size}")

mel = tok.features("tone.wav")  # log-mel [n_mels, frames] the tokenizer sees
mel_back = tok.decode_features(codes)  # log-mel rebuilt from the codes
frames = min(mel.shape[1], mel_back.shape[1])
err = (mel[:, :frames] - mel_back[:, :frames]).abs().mean() / (mel.max() - mel.min())
print(f"log-mel error relative to the clip's range: {err:.3f}")

audio = tok.decode(codes)  # waveform at tok.sample_rate
sf.write("tone-decoded.wav", audio.numpy(), tok.sample_rate)
print(f"wrote tone-decoded.wav ({audio.numel() / tok.sample_rate:.2f} s at {tok.sample_rate} Hz)")
assert torch.isfinite(audio).all()

# a batch: a list of clips gives padded codes and each clip's length; decode gives them back one by one
codes, lengths = tok.encode(["tone.wav", wave[: sr // 2]], sample_rate=sr)  # [2, n_max], [2]
waves = tok.decode((codes, lengths))  # a list: clip i has lengths[i] * samples-per-token samples
print(f"batch of {len(waves)}: {lengths.tolist()} codes -> {[round(w.numel() / tok.sample_rate, 2) for w in waves]} s")
assert torch.equal(waves[0], audio)  # the padding after a clip is never read

# streaming: codes as they arrive (say, from a model generating them) -> samples as soon as they are final
pieces = [p for p in tok.decode_stream(codes[0].split(10))]  # 10 codes (0.2 s) at a time
print(f"streamed {len(pieces)} pieces, {tok.decode_lookahead} tokens of lookahead "
      f"({tok.decode_lookahead / tok.tokens_per_second:.2f} s)")
assert torch.allclose(torch.cat(pieces), audio, atol=1e-3)

# and the other way: a recording arriving in pieces (say, from a microphone) -> codes block by block
at_16k = mmtok.load_audio(wave.astype(np.float32), sr, target_rate=tok.sample_rate)  # resample first, then cut
blocks = list(tok.encode_iter(at_16k.split(tok.sample_rate // 10)))  # 0.1 s pieces; a block is out once final
assert torch.equal(torch.cat(blocks), tok.encode(at_16k, sample_rate=tok.sample_rate))
print(f"encode_iter: {len(blocks)} block(s) of up to {tok.cfg.block_tokens} codes")
