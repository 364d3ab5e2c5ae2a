"""Audio extraction for the real-data audio corpus: one handler per Debian package.

Used by ``fetch_corpus.py`` (which fetches, unpacks, writes, measures and splits)::

    python benchmarks/fetch_corpus.py audio --out /work/data/corpus/audio \
        --packages-dir /work/data/corpus/debs

Each handler takes the unpacked ``Package`` and yields an ``Item`` per clip, grouped by
speaker (or voice set, composer, sound bundle) so that splits never share a voice:

* flight-of-the-amazon-queen: voice clips inside ``queen.1c`` (bare MP3 streams -> .mp3),
  grouped by the speaking character (Flight-of-the-Amazon-Queen-License, freeware).
* tuxpaint-stamps-default: stamp names and descriptions per language, effects (GPL-2).
* fillets-ng-data, fillets-ng-data-cs: Fish Fillets dialogue per character, music (GPL-2).
* klettres-data, ktuberling-data: letters and words per language folder (GPL-2+).
* gcin-voice: Mandarin syllables in two voices (GPL-3 or LGPL-3, CC-BY-3).
* asterisk-core-sounds-{en,es,fr,it,ru}-g722: telephone prompts in raw G.722, decoded to
  FLAC, one speaker each (CC-BY-SA-3.0 for en/es/fr, CC-BY-3.0 for it/ru).
* codec2-examples: test speech, wav as is and 8 kHz raw PCM -> FLAC (LGPL-2.1).
* ufoai-music: Ogg tracks inside ``0music.pk3``, grouped by composer (GPL-2, CC-BY(-SA)-3.0,
  public domain).
* lomiri-sounds: ringtones and notification sounds (CC0-1.0, CC-BY(-SA)-3.0, CC-BY-4.0).
* sonic-pi-samples: instrument and drum samples (CC0, MIT).

The licenses above are what the manifest records per file from each package's copyright
file; the manifest is the reference. Nothing is resampled; files that are already audio
keep their bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import corpus_formats as cf
from corpus_source import BytesOf, Item, Package, bytes_of, copy_of

TOP = "audio"  # files go to OUT/audio/<source>/...
PACKAGES = [
    "flight-of-the-amazon-queen", "tuxpaint-stamps-default", "fillets-ng-data-cs",
    "fillets-ng-data", "klettres-data", "ktuberling-data", "gcin-voice",
    "asterisk-core-sounds-en-g722", "asterisk-core-sounds-es-g722",
    "asterisk-core-sounds-fr-g722", "asterisk-core-sounds-it-g722",
    "asterisk-core-sounds-ru-g722", "codec2-examples", "ufoai-music", "lomiri-sounds",
    "sonic-pi-samples",
]  # fmt: skip
LOCAL: dict[str, Callable[[], Package]] = {}  # sources that are not Debian packages
LEFT_OUT = {
    "beneath-a-steel-sky": "optional source: its 130 min of voice sit in sky.dsk behind "
    "RNC compression; not unpacked in this version"
}
MEASURED = ("seconds", "sample_rate", "channels")
DECODER_FORMATS = ("g722", "mp3")  # what PyAV reads here: the telephone prompts, the MP3 clips measured
FORMAT_USE = {"g722": "decodes the G.722 telephone prompts", "mp3": "measures the MP3 clips"}
ASTERISK = [p for p in PACKAGES if p.startswith("asterisk-core-sounds-")]
# What a source needs beyond libsndfile reading its files: the PyAV formats of its files, FLAC written
PYAV_FORMATS = {"flight-of-the-amazon-queen": ("mp3",), **dict.fromkeys(ASTERISK, ("g722",))}
FLAC_WRITTEN = {*ASTERISK, "codec2-examples"}  # headerless audio decoded to FLAC
PYAV_ONLY = {"flight-of-the-amazon-queen"}  # every file is MP3, measured by PyAV: no libsndfile needed


def check_decoders(sources: list[str] | None = None) -> None:
    """Refuse, in one line and before any work, an install that cannot decode the files of ``sources`` (default:
    every source): PyAV decodes the G.722 telephone prompts and measures the MP3 clips, soundfile writes the FLAC
    files and measures the rest. Only what the sources asked for need is checked (``PYAV_FORMATS``,
    ``FLAC_WRITTEN``): ``--only codec2-examples`` builds without PyAV. Without this check every such file would
    fail on its own, one skip at a time."""
    sources = [*PACKAGES, *LOCAL] if sources is None else sources
    if any(s not in PYAV_ONLY for s in sources):
        try:
            import soundfile as sf
        except (ImportError, OSError) as e:  # OSError: soundfile without its libsndfile
            raise SystemExit(f"fetch_corpus audio: soundfile cannot be loaded ({e}): it writes the FLAC files and "
                             "measures the clips; reinstall mmtok with pip install -e .") from None
        if FLAC_WRITTEN.intersection(sources) and "FLAC" not in sf.available_formats():
            raise SystemExit("fetch_corpus audio: this soundfile's libsndfile cannot write FLAC: reinstall mmtok "
                             "with pip install -e .")
    formats = [f for f in DECODER_FORMATS if any(f in PYAV_FORMATS.get(s, ()) for s in sources)]
    if not formats:
        return
    try:
        import av
    except ImportError as e:
        uses = " and ".join(FORMAT_USE[f] for f in formats)
        raise SystemExit(f"fetch_corpus audio: PyAV is not installed ({e}): it {uses}; install it with "
                         'pip install -e ".[video]"') from None
    missing = [f for f in formats if f not in av.formats_available]
    if missing:
        raise SystemExit(f"fetch_corpus audio: PyAV {av.__version__} was built without the {' and '.join(missing)} "
                         'format of FFmpeg, which the corpus needs: install the PyAV wheel with pip install -e ".[video]"')


def decoder_versions() -> str:
    """The decoders a file that fails is remembered with (``corpus_failures``): libsndfile's version, PyAV's and
    that of FFmpeg's libavcodec in it ("none" for one not installed)."""
    try:
        import soundfile as sf

        versions = [f"libsndfile {sf.__libsndfile_version__}"]
    except (ImportError, OSError):
        versions = ["libsndfile none"]
    try:
        import av

        libavcodec = ".".join(str(n) for n in av.library_versions.get("libavcodec", ()))
        versions.append(f"PyAV {av.__version__} (libavcodec {libavcodec or '?'})")
    except ImportError:
        versions.append("PyAV none")
    return ", ".join(versions)


# --------------------------------------------------------------------------- writers and measuring


@dataclass(frozen=True)
class FlacFromRaw:
    """Writer of headerless 16-bit little-endian mono PCM (``src``, at ``rate`` Hz) as FLAC at the same rate."""

    src: Path
    rate: int

    def __call__(self, dest: Path) -> None:
        import numpy as np
        import soundfile as sf

        sf.write(dest, np.fromfile(self.src, dtype="<i2"), self.rate, format="FLAC", subtype="PCM_16")


def flac_from_raw(src: Path, rate: int) -> FlacFromRaw:
    """Headerless 16-bit little-endian mono PCM -> FLAC at the same rate."""
    return FlacFromRaw(src, rate)


@dataclass(frozen=True)
class FlacFromG722:
    """Writer of raw G.722 (16 kHz wideband, ``src``) decoded with PyAV, as FLAC."""

    src: Path

    def __call__(self, dest: Path) -> None:
        import av
        import numpy as np
        import soundfile as sf

        with av.open(str(self.src), format="g722") as box:
            stream = box.streams.audio[0]
            frames = [f.to_ndarray().reshape(-1) for f in box.decode(stream)]
            rate = stream.codec_context.sample_rate or 16000
        pcm = np.concatenate(frames)
        if pcm.dtype != np.int16:
            pcm = np.clip(pcm * 32768.0, -32768, 32767).astype(np.int16)
        sf.write(dest, pcm, rate, format="FLAC", subtype="PCM_16")


def flac_from_g722(src: Path) -> FlacFromG722:
    """Raw G.722 (16 kHz wideband) decoded with PyAV -> FLAC."""
    return FlacFromG722(src)


def audio_info(path: Path) -> tuple[float, int, int]:
    """(seconds, sample_rate, channels); MP3 and anything libsndfile cannot read via PyAV. Without PyAV (a build of
    sources that need none of it, ``check_decoders``), a file libsndfile cannot read is a ValueError about it."""
    if path.suffix.lower() != ".mp3":
        why = "no frames"
        try:
            import soundfile as sf

            info = sf.info(str(path))
            if info.frames > 0:
                return info.frames / info.samplerate, info.samplerate, info.channels
        except RuntimeError as err:
            why = str(err)
        try:
            import av
        except ImportError:
            raise ValueError(f"libsndfile cannot read {path.name} ({why}) and PyAV is not installed") from None
    import av

    with av.open(str(path)) as box:
        stream = box.streams.audio[0]
        n = sum(frame.samples for frame in box.decode(stream))
        return n / stream.rate, stream.rate, stream.channels


def measure(path: Path) -> dict:
    """The manifest's measured fields (``MEASURED``) for a written file."""
    seconds, rate, channels = audio_info(path)
    return {"seconds": round(seconds, 3), "sample_rate": rate, "channels": channels}


# --------------------------------------------------------------------------- sources

AUDIO_EXT = (".ogg", ".mp3", ".wav", ".flac", ".opus")
TUX_LANGS = set(
    "be bg ca da de el en en_GB es fr it ja ko lt ml nb nl nn pt pt_BR ro ru sl sv zh_tw".split()
)
QUEEN_LINE = re.compile(r"^(\d\d)[0-9A-FSX]{4}([JP])[0-9A-Z]\.SB$")
CODEC2_RAW_SPEECH = {"hts", "hts1", "hts2", "kristoff", "g3plx", "cq_ref"}  # rest: modem/test tones


def files(root: Path, sub: str, suffixes: tuple[str, ...] = AUDIO_EXT) -> list[Path]:
    return sorted(
        p for p in (root / sub).rglob("*") if p.is_file() and p.suffix.lower() in suffixes
    )


def plain(root: Path, p: Path, group: str, sub: str, **meta) -> Item:
    """An audio file copied unchanged; its path under the source keeps the part below ``sub``."""
    rel = p.relative_to(root / sub).as_posix()
    return Item(rel, group, copy_of(p), [p.relative_to(root).as_posix()], meta)


def audio_queen(pkg: Package) -> Iterator[Item]:
    """Voice clips (.SB entries: bare MP3 streams) of queen.1c, grouped by speaker.

    Dialogue lines are ``KK HHHH J|P n``: J is Joe, P the person of the dialogue (.DOG)
    file whose talk key is KK. Cutaway and other lines mix speakers: ``queen:mixed-*``.
    """
    data = (pkg.root / "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c").read_bytes()
    _, _, entries = cf.queen_index(data)
    people = {}
    for e in entries:
        if e.name.endswith(".DOG"):
            key = cf.queen_dog_talk_key(data[e.offset : e.offset + e.size])
            people.setdefault(key, re.sub(r"\d+$", "", e.name[:-4]).lower())
    for e in entries:
        if not e.name.endswith(".SB"):
            continue
        m = QUEEN_LINE.match(e.name)
        if (m and m.group(2) == "J") or e.name.startswith("JOE"):
            who = "joe"
        elif m:
            who = people.get(int(m.group(1)), f"dialogue{m.group(1)}")
        else:
            who = (
                "mixed-cutaway"
                if re.match(r"C\d", e.name)
                else "mixed-" + (re.sub(r"[^A-Z].*", "", e.name).lower() or "other")
            )
        meta = {"kind": "speech", "language": "en", "origin": f"queen.1c:{e.name}"}
        # cut out when written: a damaged clip is that file's skip (counted), not the end of the run
        yield Item(e.name[:-3].lower() + ".mp3", f"queen:{who}", _queen_writer(data, e), ["queen.1c"], meta)


def _queen_writer(data: bytes, entry: cf.QueenEntry) -> BytesOf:
    """Writer of one .SB entry's MP3 stream, cut out of ``data`` only when the file is written (or its
    content asked for)."""
    return BytesOf(lambda: cf.queen_clip(data, entry))


def audio_tuxpaint(pkg: Package) -> Iterator[Item]:
    """Stamp names/descriptions ``NAME[_desc][_LANG].ogg`` (one voice set per language) and effects."""
    sub = "usr/share/tuxpaint/stamps"
    for p in files(pkg.root, sub):
        parts = p.stem.split("_")
        lang = None
        if len(parts) > 2 and "_".join(parts[-2:]) in TUX_LANGS:
            lang, parts = "_".join(parts[-2:]), parts[:-2]
        elif len(parts) > 1 and parts[-1] in TUX_LANGS:
            lang, parts = parts[-1], parts[:-1]
        if lang is None and parts[-1] == "desc":
            lang = "en"
        kind = "speech" if lang else "sounds"
        yield plain(pkg.root, p, f"tuxpaint:{lang or 'sfx'}", sub, kind=kind, language=lang)


FILLETS_FISH = {"m": "fish-small", "v": "fish-big"}


def fillets_speaker(stem: str) -> str | None:
    """Who speaks a Fish Fillets line, from its file name, or None for a sound effect.

    ``LEVEL-WHO-line`` (``ob-m-klid``, ``smrt-x-obe``), or ``WHO-line`` and ``line-WHO`` for the
    two fish (m small, v big: ``m-hraje``, ``agenti-m``); ``sp-...`` names and the rest have none.
    """
    words = stem.split("-")
    if len(words) > 2:
        return words[1]
    if len(words) == 2:
        return next((w for w in words if w in FILLETS_FISH), None)
    return None


def audio_fillets(pkg: Package) -> Iterator[Item]:
    """Fish Fillets: ``sound/LEVEL/LANG/NAME.ogg`` and ``sound/share/[BUNDLE/LANG/]NAME.ogg`` lines and
    sounds, music. Grouped by character (``fillets_speaker``), at any folder depth: every line of one voice
    in one group. Lines of a level without a speaker stay per level; other files without one are ``sfx``."""
    sub = "usr/share/games/fillets-ng"
    for p in files(pkg.root, sub):
        parts = p.relative_to(pkg.root / sub).parts
        if parts[0] == "music":
            yield plain(pkg.root, p, "fillets:music", sub, kind="music", language=None)
            continue
        if parts[0] != "sound":
            continue
        who = fillets_speaker(p.stem)
        lang = parts[-2] if len(parts) > 3 else None
        # a character speaks in many levels (and is the same clip in some): grouped by character, not by
        # level or folder, so that no voice is in two splits
        if who:
            group = FILLETS_FISH.get(who, f"voice-{who}")
        else:
            group = parts[1] if len(parts) == 4 and parts[1] != "share" else "sfx"
        kind = "sounds" if group == "sfx" or who == "x" else "speech"
        yield plain(pkg.root, p, f"fillets:{group}", sub, kind=kind, language=lang if group != "sfx" else None)


def audio_by_language(pkg: Package, sub: str, tag: str) -> Iterator[Item]:
    """Files in ``sub/LANG/...``: one speaker set per language folder (klettres, ktuberling)."""
    for p in files(pkg.root, sub):
        lang = p.relative_to(pkg.root / sub).parts[0]
        if len(p.relative_to(pkg.root / sub).parts) == 1:
            yield plain(pkg.root, p, f"{tag}:sfx", sub, kind="sounds", language=None)
        else:
            yield plain(
                pkg.root, p, f"{tag}:{lang.split('@')[0]}", sub, kind="speech", language=lang
            )


def audio_gcin(pkg: Package) -> Iterator[Item]:
    """Mandarin syllables ``ogg/BOPOMOFO/N.ogg``; N (3 or 5) is the voice."""
    sub = "usr/share/gcin-voice/ogg"
    for p in files(pkg.root, sub):
        yield plain(pkg.root, p, f"gcin:voice{p.stem}", sub, kind="speech", language="zh")


def audio_asterisk(pkg: Package) -> Iterator[Item]:
    """Telephone prompts in raw G.722 (16 kHz), one speaker per ``LANG_REGION_SEX_NAME`` folder."""
    sub = "usr/share/asterisk/sounds"
    for p in files(pkg.root, sub, (".g722",)):
        rel = p.relative_to(pkg.root / sub)
        if "silence" in rel.parts:
            continue  # silent padding files, not speech
        voice = rel.parts[0]
        lang = voice.split("_")[0]
        hints = [p.relative_to(pkg.root).as_posix(), f"{lang}-{rel.name}"]
        meta = {"kind": "speech", "language": lang, "origin": rel.as_posix()}
        yield Item(
            rel.with_suffix(".flac").as_posix(),
            f"asterisk:{voice.split('_')[-1]}",
            flac_from_g722(p),
            hints,
            meta,
        )


def codec2_speaker(stem: str) -> str:
    """Recording name without processing suffixes: hts1a -> hts1, morig/m2400 -> m."""
    s = re.sub(r"_(16kHz|004|10s)$", "", stem)
    return "codec2:" + (re.sub(r"(orig|2400)$", "", re.sub(r"(\d)a$", r"\1", s)) or stem)


def audio_codec2(pkg: Package) -> Iterator[Item]:
    """codec2 test speech: wav files as they are, speech raw files (8 kHz s16le) -> FLAC."""
    sub = "usr/share/codec2"
    wavs = files(pkg.root, sub, (".wav",))
    for p in wavs:
        yield plain(pkg.root, p, codec2_speaker(p.stem), sub, kind="speech", language=None)
    have = {p.stem for p in wavs}
    for p in files(pkg.root, f"{sub}/raw", (".raw",)):
        if p.stem in CODEC2_RAW_SPEECH and p.stem not in have:
            rel = p.relative_to(pkg.root / sub).with_suffix(".flac").as_posix()
            meta = {
                "kind": "speech",
                "language": None,
                "origin": p.relative_to(pkg.root).as_posix(),
            }
            yield Item(rel, codec2_speaker(p.stem), flac_from_raw(p, 8000), [meta["origin"]], meta)


# Name prefixes of the composers with several tracks in 0music.pk3 whose names carry no dash
# (debian/copyright: "Marine" Baklund, David Reeves, Simon Green (Psymong), Manuel "Vanethian" Marino).
UFOAI_COMPOSERS = {"Marine": "Marine", "David": "David", "Psymong": "Psymong", "van_": "van", "ufo": "ufo"}


def ufoai_composer(stem: str) -> str:
    """A track's composer group: a ``UFOAI_COMPOSERS`` prefix, else the name before a dash
    (``Crystan-Credits``), else the track itself (composer not told by the name)."""
    return next((c for p, c in UFOAI_COMPOSERS.items() if stem.startswith(p)), stem.split("-")[0])


def audio_ufoai(pkg: Package) -> Iterator[Item]:
    """Ogg tracks inside ``0music.pk3`` (a zip); group = composer (``ufoai_composer``)."""
    pk3 = pkg.root / "usr/share/games/ufoai/base/0music.pk3"
    for name, data in cf.zip_members(pk3.read_bytes(), (".ogg",)):
        meta = {"kind": "music", "language": None, "origin": f"0music.pk3:{name}"}
        yield Item(name, f"ufoai:{ufoai_composer(Path(name).stem)}", bytes_of(data), [name], meta)


def audio_lomiri(pkg: Package) -> Iterator[Item]:
    sub = "usr/share/sounds/lomiri"
    for p in files(pkg.root, sub):
        folder = p.relative_to(pkg.root / sub).parts[0]
        kind = "music" if folder == "ringtones" else "sounds"
        yield plain(pkg.root, p, f"lomiri-sounds:{folder}", sub, kind=kind, language=None)


def audio_sonic_pi(pkg: Package) -> Iterator[Item]:
    sub = "usr/share/sonic-pi/samples"
    for p in files(pkg.root, sub):
        yield plain(
            pkg.root, p, f"sonic-pi:{p.stem.split('_')[0]}", sub, kind="sounds", language=None
        )


SOURCES: dict[str, Callable[[Package], Iterator[Item]]] = {
    "flight-of-the-amazon-queen": audio_queen,
    "tuxpaint-stamps-default": audio_tuxpaint,
    "fillets-ng-data-cs": audio_fillets,
    "fillets-ng-data": audio_fillets,
    "klettres-data": lambda pkg: audio_by_language(pkg, "usr/share/klettres", "klettres"),
    "ktuberling-data": lambda pkg: audio_by_language(
        pkg, "usr/share/ktuberling/sounds", "ktuberling"
    ),
    "gcin-voice": audio_gcin,
    "codec2-examples": audio_codec2,
    "ufoai-music": audio_ufoai,
    "lomiri-sounds": audio_lomiri,
    "sonic-pi-samples": audio_sonic_pi,
    **{
        f"asterisk-core-sounds-{lang}-g722": audio_asterisk
        for lang in ("en", "es", "fr", "it", "ru")
    },
}
# Groups that cannot be split further (one speaker across a whole source, or lines of mixed
# speakers): fixed splits so that no voice appears in two splits.
SPLITS = {
    "queen:joe": "train", "queen:mixed-*": "train",
    "fillets:fish-small": "train", "fillets:fish-big": "train",
    # every other Fish Fillets character: the first split (train, validation, test) any of its levels
    # had when groups were per level, so that what the shipped models trained on stays in train
    "fillets:voice-*": "train", "fillets:voice-a": "validation",
    "asterisk:Allison": "train", "asterisk:IvrvoiceRU": "train",
    "asterisk:June": "validation", "asterisk:Carlo": "test",
    "gcin:voice3": "train", "gcin:voice5": "test",
    "codec2:*": "train",
    # ufoai composers (groups were per track): the first split (train, validation, test) any of their
    # tracks had, so that nothing leaves train and no held-out track moves to the other held-out split
    "ufoai:Marine": "train", "ufoai:David": "train", "ufoai:Psymong": "train", "ufoai:van": "train",
    "ufoai:ufo": "test",
}  # fmt: skip
