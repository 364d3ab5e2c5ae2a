"""Audio: file -> mono waveform -> log-mel slices -> codes ``[n]`` -> log-mel -> waveform.

:mod:`~mmtok.audio.io` reads and resamples files and arrays (the channel rules for arrays and
chunks in :mod:`~mmtok.audio.arrays`; the streamed resamplers in
:mod:`~mmtok.audio.resample`; their headers checked against what they hold by
:mod:`~mmtok.audio.file_checks`; what libsndfile cannot read decoded through PyAV by
:mod:`~mmtok.audio.av_read`); :mod:`~mmtok.audio.features`
is the log-mel front end (its signal constants in :mod:`~mmtok.audio.front_end`); :mod:`~mmtok.audio.tokenizer` the tokenizer, with its settings
(:mod:`~mmtok.audio.config`), its encoding in fixed blocks (:mod:`~mmtok.audio.encode_blocks`),
the checks on codes it decodes (:mod:`~mmtok.audio.codes`),
Griffin-Lim (:mod:`~mmtok.audio.griffin_lim`) and streaming decode
(:mod:`~mmtok.audio.decode_stream`, :mod:`~mmtok.audio.streaming`);
:mod:`~mmtok.audio.model` its networks; :mod:`~mmtok.audio.vocoder` the learned
waveform decoder for that log-mel (its settings in :mod:`~mmtok.audio.vocoder_config`), :mod:`~mmtok.audio.attach` puts one into a
tokenizer checkpoint. :mod:`~mmtok.audio.train` is ``mmtok train-tokenizer audio``,
with what it trains on (:mod:`~mmtok.audio.train_data`), its corpus builder (:mod:`~mmtok.audio.corpus`) and speaker-balanced codebook
fit (:mod:`~mmtok.audio.codebook`); :mod:`~mmtok.audio.vocoder_train` is ``mmtok
train-tokenizer vocoder``, with one run in its folder (:mod:`~mmtok.audio.vocoder_run`) and its cache
and sampler (:mod:`~mmtok.audio.vocoder_data`);
:mod:`~mmtok.audio.scores` gives STOI and wideband PESQ of a decoded waveform.

The warnings a caller may filter are here: :class:`SilenceWarning` (a clip of digital silence) and
:class:`MixedChannelsWarning` (an array of more than two channels mixed into one clip) and
:class:`CancelledChannelsWarning` (channels that cancel in the mono mix, one the other inverted), e.g.
``warnings.simplefilter("ignore", mmtok.audio.MixedChannelsWarning)``.

Imports: :mod:`mmtok.core`, :mod:`mmtok.vq`, :mod:`mmtok.synth`. Never
:mod:`mmtok.image` or anything above the media layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmtok.core.lazy import lazy_members

if TYPE_CHECKING:
    from mmtok.audio.arrays import CancelledChannelsWarning as CancelledChannelsWarning
    from mmtok.audio.arrays import MixedChannelsWarning as MixedChannelsWarning
    from mmtok.audio.config import AudioTokenizerConfig as AudioTokenizerConfig
    from mmtok.audio.io import SilenceWarning as SilenceWarning
    from mmtok.audio.io import load_audio as load_audio
    from mmtok.audio.tokenizer import AudioTokenizer as AudioTokenizer

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "CancelledChannelsWarning": "mmtok.audio.arrays",
    "MixedChannelsWarning": "mmtok.audio.arrays",
    "AudioTokenizerConfig": "mmtok.audio.config",
    "SilenceWarning": "mmtok.audio.io",
    "load_audio": "mmtok.audio.io",
    "AudioTokenizer": "mmtok.audio.tokenizer",
}


__getattr__, __dir__ = lazy_members(__name__, _HOMES, globals())


__all__ = ['AudioTokenizer', 'AudioTokenizerConfig', 'CancelledChannelsWarning', 'MixedChannelsWarning', 'SilenceWarning', 'load_audio']
