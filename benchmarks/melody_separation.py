"""What separating a melody costs: a 30 s upload through Demucs with today's settings and the melody path's.

Builds a randomly initialised ``HTDemucs`` with the arguments of the published htdemucs (speed does not depend on
the weights' values), writes a synthetic 30 s song to a WAV file and loads it as ``Studio`` does (``load_audio``:
mono, 32 kHz). Then, side by side in one run, separates it with the stems export's settings (today's) and the
melody path's (``MELODY_SEPARATION``), and with ``--levers`` each cheaper lever alone, printing wall and CPU seconds
and how many chroma frames (the one-hot chroma MusicGen-Melody reads, of vocals plus other) equal today's. Two more
synthetic songs (the tests' hummed tune over bass and drums) are separated both ways for their chroma agreement,
and ``MelodySeparator.prepare`` is timed on the upload, then again (a cache hit).

Random weights measure speed exactly, but agreement only partly: a random htdemucs has its layer scales at their
initial 1e-4, so its transformer and the convolutions' residual branches barely reach the output, which hides the
error int8 and bfloat16 add there. With ``--levers`` each lever is also measured alone, and the ``stressed`` column
repeats the int8 and bfloat16 comparisons with every layer scale at 1.

    python -m benchmarks.melody_separation [--seconds 30] [--rounds 1] [--levers] [--tiny]

``--tiny`` runs the same code with the tests' tiny Demucs in seconds (the test suite does, so this cannot rot).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import torch

from generation.audio.stems import EXPORT_SEPARATION, MELODY_SEPARATION, SeparationSettings, StemSeparator
from generation.audio.uploads import load_audio
from generation.melody_stems import LEFT_OUT, NOTHING_LEFT, SEPARATED, MelodySeparator
from generation.model.chroma import SAMPLING_RATE, ChromaExtractor

SOURCES = ["drums", "bass", "other", "vocals"]
# The arguments htdemucs (signature 955717e8, the only model in demucs' htdemucs.yaml) was built with, as
# ``demucs.pretrained.get_model("htdemucs").models[0]`` carries them; the rest are HTDemucs' defaults. 42.0M
# parameters; segment 7.8 s (the longest a transformer model may be given).
HTDEMUCS = {
    "sources": SOURCES,
    "audio_channels": 2,
    "samplerate": 44_100,
    "segment": Fraction(39, 5),
    "channels": 48,
    "depth": 4,
    "dconv_mode": 3,
    "bottom_channels": 512,
    "t_layers": 5,
    "t_dropout": 0.02,
    "t_sparse_attn_window": 400,
    "multi_freqs": [],
}
SONG_RATE = 44_100  # a song as people upload it
TODAY = "today (stems export)"
NEW = "melody path (new)"
# Today's settings and the melody path's, then (--levers) each lever alone: name -> (settings, torch threads; 0 = as
# set). Shifts are 0 today already.
VARIANTS: dict[str, tuple[SeparationSettings, int]] = {
    TODAY: (EXPORT_SEPARATION, 0),
    NEW: (MELODY_SEPARATION, 0),
}
LEVERS: dict[str, tuple[SeparationSettings, int]] = {
    "no tail segment": (replace(EXPORT_SEPARATION, skip_tail=True), 0),
    "overlap 0": (replace(EXPORT_SEPARATION, overlap=0.0), 0),
    "int8 linear": (replace(EXPORT_SEPARATION, int8=True), 0),
    "bf16 autocast": (replace(EXPORT_SEPARATION, bf16=True), 0),
    "1 torch thread": (EXPORT_SEPARATION, 1),
}
STRESSED = ("int8 linear", "bf16 autocast")  # with --levers: compared again, on one segment, every layer scale at 1
STRESSED_SECONDS = 5.0  # one segment at every overlap
TEST_MIXES = ((0.15, 0.6, 0.6), (0.3, 0.6, 0.0))  # (tune, bass, drums) levels of the tests' songs also measured


@dataclass(frozen=True)
class Row:
    """One way of separating the timed upload."""

    name: str
    settings: SeparationSettings
    threads: int
    wall_seconds: float  # best of the rounds
    cpu_seconds: float  # process CPU time of that round (both threads)
    agreement: float  # share of chroma frames equal to today's
    stressed_agreement: float | None = None  # the same, every layer scale at 1 (None: not measured)


@dataclass(frozen=True)
class Figures:
    """One run's figures, in seconds."""

    audio_seconds: float
    load_seconds: float  # load_audio: decode, downmix, resample to 32 kHz
    rows: tuple[Row, ...]
    songs: tuple[tuple[str, float, float], ...]  # (song, new chroma = today's, today's chroma = the mix's)
    first_seconds: float  # MelodySeparator.prepare (melody settings) on a new upload
    cached_seconds: float  # prepare on the same upload again
    parameters: int

    def lines(self) -> list[str]:
        today = self.rows[0]
        lines = [
            f"Demucs: {self.parameters / 1e6:.1f}M parameters, random weights; {torch.get_num_threads()} torch threads",
            f"load_audio of the {self.audio_seconds:g} s upload: {self.load_seconds:.2f} s",
            f"{'separating it':<22}{'settings':<58}{'wall s':>8}{'speed-up':>9}{'CPU s':>8}{'speed-up':>9}"
            f"{'chroma = today':>15}{'stressed':>9}",
        ]
        for row in self.rows:
            settings = row.settings.describe() + (f", {row.threads} thread" if row.threads else "")
            stressed = "" if row.stressed_agreement is None else f"{row.stressed_agreement:.1%}"
            lines.append(
                f"{row.name:<22}{settings:<58}{row.wall_seconds:>8.1f}{today.wall_seconds / row.wall_seconds:>8.2f}x"
                f"{row.cpu_seconds:>8.1f}{today.cpu_seconds / row.cpu_seconds:>8.2f}x{row.agreement:>15.1%}"
                f"{stressed:>9}"
            )
        lines.append("chroma of vocals+other, melody path against today's, per synthetic song (random weights):")
        for song, agreement, unchanged in self.songs:
            lines.append(
                f"  {song}: {agreement:.1%} of frames equal (today's separated chroma = the mix's on {unchanged:.1%})"
            )
        per_second = self.first_seconds / self.audio_seconds
        lines += [
            f"MelodySeparator.prepare (new): {self.first_seconds:.1f} s ({per_second:.2f} s per second of audio)",
            f"the same upload again (cache hit): {self.cached_seconds * 1000:.2f} ms",
        ]
        return lines


def build_demucs(tiny: bool = False, seed: int = 0):
    """htdemucs of the real size with random weights, or the tests' tiny one."""
    if tiny:
        from tests.tiny_demucs import build_tiny_demucs

        return build_tiny_demucs(seed)
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(**HTDEMUCS).eval()


def synthetic_song(seconds: float, rate: int = SONG_RATE, seed: int = 0) -> np.ndarray:
    """Stereo frames x 2: a sawtooth bass, a kick on every beat and a sine melody, at 120 BPM."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    bass_hz = np.array([55.0, 43.65, 65.41, 49.0])[(t // 2).astype(int) % 4]
    bass = 2 * ((t * bass_hz) % 1.0) - 1
    melody_hz = 329.63 * 2 ** (rng.integers(0, 12, size=int(seconds * 4) + 1) / 12)[(t * 4).astype(int)]
    melody = np.sin(2 * np.pi * np.cumsum(melody_hz) / rate)
    beat = t % 0.5
    kick = np.sin(2 * np.pi * 55 * beat) * np.exp(-beat * 20)
    mix = 0.3 * bass + 0.25 * melody + 0.4 * kick
    return np.stack([mix, 0.9 * mix], axis=1).astype(np.float32) * 0.8


def melody_classes(separator: StemSeparator, samples: np.ndarray, settings: SeparationSettings) -> np.ndarray:
    """The pitch class MusicGen-Melody reads per frame from vocals plus other, as ``MelodySeparator`` sums them."""
    stems = separator.separate(samples[None], SAMPLING_RATE, settings=settings)
    melody = np.sum([stem[0] for name, stem in stems.items() if name not in LEFT_OUT], axis=0, dtype=np.float32)
    return ChromaExtractor()(melody, SAMPLING_RATE)[0].argmax(-1).numpy()


def timed(separator: StemSeparator, samples: np.ndarray, settings: SeparationSettings, threads: int):
    """(pitch classes, wall seconds, CPU seconds) of one separation with ``threads`` torch threads (0: as set)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        classes = melody_classes(separator, samples, settings)
        return classes, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(before)


def stressed(model):
    """A copy of ``model`` with every layer scale at 1, so its transformer and residual branches weigh fully."""
    import copy

    from demucs.transformer import LayerScale

    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LayerScale):
                module.scale.fill_(1.0)
    return model


def hummed_songs(seconds: float) -> dict[str, np.ndarray]:
    """The tests' synthetic songs (a hummed tune over a bass line and drums) as 32 kHz mono mixes."""
    from tests.test_melody_stems import mix_of, synthetic_song

    songs = {}
    for tune, bass, drums in TEST_MIXES:
        mix = mix_of(synthetic_song(seconds, melody=tune, bass=bass, drums=drums))
        songs[f"hummed tune {tune:g}, bass {bass:g}, drums {drums:g}"] = mix * np.float32(0.9 / np.abs(mix).max())
    return songs


def measure(seconds: float = 30.0, tiny: bool = False, rounds: int = 1, levers: bool = False) -> Figures:
    """Separate a ``seconds`` upload every way in ``VARIANTS`` (and ``LEVERS``), interleaved ``rounds`` times."""
    model = build_demucs(tiny)
    parameters = sum(p.numel() for p in model.parameters())
    separator = StemSeparator.from_model(model, name="htdemucs-random")
    with tempfile.TemporaryDirectory(prefix="moodtape-bench-") as folder:
        path = Path(folder) / "song.wav"
        soundfile.write(path, synthetic_song(seconds), SONG_RATE, subtype="PCM_16")
        started = time.perf_counter()
        loaded = load_audio(path, SAMPLING_RATE, max_seconds=30.0)
        load_seconds = time.perf_counter() - started
    # 1. Every way, side by side: the best of the rounds, each round in the same order
    variants = VARIANTS | (LEVERS if levers else {})
    for settings, _ in variants.values():
        separator._model_for(settings)  # the int8 copy is made once per model, not per upload
    melody_classes(separator, loaded.samples[:SAMPLING_RATE], EXPORT_SEPARATION)  # warm-up: one segment
    best: dict[str, tuple] = {}
    for _ in range(rounds):
        for name, (settings, threads) in variants.items():
            result = timed(separator, loaded.samples, settings, threads)
            if name not in best or result[1] < best[name][1]:
                best[name] = result
    today = best[TODAY][0]
    # 2. The levers that change numbers inside the network, again with every layer scale at 1
    harsh_agreement = {}
    if levers:
        harsh = StemSeparator.from_model(stressed(model), name="htdemucs-random-stressed")
        clip = loaded.samples[: round(STRESSED_SECONDS * SAMPLING_RATE)]
        harsh_today = melody_classes(harsh, clip, EXPORT_SEPARATION)
        for name in STRESSED:
            harsh_agreement[name] = float((melody_classes(harsh, clip, variants[name][0]) == harsh_today).mean())
    rows = tuple(
        Row(
            name,
            settings,
            threads,
            best[name][1],
            best[name][2],
            float((best[name][0] == today).mean()),
            harsh_agreement.get(name),
        )
        for name, (settings, threads) in variants.items()
    )
    # 3. Chroma agreement on more synthetic songs
    mix_classes = ChromaExtractor()(loaded.samples, SAMPLING_RATE)[0].argmax(-1).numpy()
    unchanged = float((today == mix_classes).mean())
    songs = [("bench song: saw bass, kick, sine tune", rows[list(variants).index(NEW)].agreement, unchanged)]
    for song, mix in hummed_songs(seconds).items():
        old = melody_classes(separator, mix, EXPORT_SEPARATION)
        new = melody_classes(separator, mix, MELODY_SEPARATION)
        plain = ChromaExtractor()(mix, SAMPLING_RATE)[0].argmax(-1).numpy()
        songs.append((song, float((new == old).mean()), float((old == plain).mean())))
    # 4. The melody path as Studio runs it, then a cache hit
    melody_separator = MelodySeparator(separator, enabled=True)
    started = time.perf_counter()
    prepared = melody_separator.prepare(loaded, separate=True)
    first_seconds = time.perf_counter() - started
    if prepared.reason not in (SEPARATED, NOTHING_LEFT):  # random weights may leave little in the melody stems
        raise RuntimeError(f"Demucs did not run ({prepared.reason}); the figure would be meaningless")
    started = time.perf_counter()
    again = melody_separator.prepare(loaded, separate=True)
    cached_seconds = time.perf_counter() - started
    assert again.cache_hit
    return Figures(loaded.used_seconds, load_seconds, rows, tuple(songs), first_seconds, cached_seconds, parameters)


def machine() -> str:
    """The CPU's model name and the flags that change float32 speed (see shared/FACTS.md)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if flag in flags]
    return f"{name}, {torch.get_num_threads()} threads, flags: {' '.join(shown) or 'none of interest'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the upload (default 30)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved timing rounds, best kept (default 1)")
    parser.add_argument("--levers", action="store_true", help="also each lever alone, and the stressed comparisons")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny Demucs: checks the code runs")
    args = parser.parse_args()
    figures = measure(args.seconds, args.tiny, args.rounds, args.levers)
    print(f"Machine: {machine()}; torch {torch.__version__}")
    for line in figures.lines():
        print(line)


if __name__ == "__main__":
    main()
