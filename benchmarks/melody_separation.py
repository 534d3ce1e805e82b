"""What separating a melody costs: a 30 s upload through ``MelodySeparator`` with an htdemucs of the real size.

Builds a randomly initialised ``HTDemucs`` with the arguments of the published htdemucs (speed does not depend on
the weights' values), writes a synthetic 30 s song to a WAV file, loads it as ``Studio`` does (``load_audio``:
mono, 32 kHz) and times ``MelodySeparator.prepare`` on it, then the same upload again (a cache hit).

    python -m benchmarks.melody_separation [--seconds 30] [--tiny]

``--tiny`` runs the same code with the tests' tiny Demucs in seconds (the test suite does, so this cannot rot).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import torch

from generation.audio.stems import StemSeparator
from generation.audio.uploads import load_audio
from generation.melody_stems import NOTHING_LEFT, SEPARATED, MelodySeparator
from generation.model.chroma import SAMPLING_RATE

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


@dataclass(frozen=True)
class Figures:
    """One run's figures, in seconds."""

    audio_seconds: float
    load_seconds: float  # load_audio: decode, downmix, resample to 32 kHz
    first_seconds: float  # prepare on a new upload: Demucs loads nothing (built in memory), then separates
    cached_seconds: float  # prepare on the same upload again
    parameters: int

    def lines(self) -> list[str]:
        per_second = self.first_seconds / self.audio_seconds
        return [
            f"Demucs: {self.parameters / 1e6:.1f}M parameters, random weights; {torch.get_num_threads()} torch threads",
            f"load_audio of the {self.audio_seconds:g} s upload: {self.load_seconds:.2f} s",
            f"separating it: {self.first_seconds:.1f} s ({per_second:.2f} s per second of audio)",
            f"the same upload again (cache hit): {self.cached_seconds * 1000:.2f} ms",
        ]


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


def measure(seconds: float = 30.0, tiny: bool = False) -> Figures:
    """Time load_audio and a melody separation of a ``seconds`` upload, then the same upload again."""
    model = build_demucs(tiny)
    parameters = sum(p.numel() for p in model.parameters())
    melody_separator = MelodySeparator(StemSeparator.from_model(model, name="htdemucs-random"), enabled=True)
    with tempfile.TemporaryDirectory(prefix="moodtape-bench-") as folder:
        path = Path(folder) / "song.wav"
        soundfile.write(path, synthetic_song(seconds), SONG_RATE, subtype="PCM_16")
        started = time.perf_counter()
        loaded = load_audio(path, SAMPLING_RATE, max_seconds=30.0)
        load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    prepared = melody_separator.prepare(loaded, separate=True)
    first_seconds = time.perf_counter() - started
    if prepared.reason not in (SEPARATED, NOTHING_LEFT):  # random weights may leave little in the melody stems
        raise RuntimeError(f"Demucs did not run ({prepared.reason}); the figure would be meaningless")
    started = time.perf_counter()
    again = melody_separator.prepare(loaded, separate=True)
    cached_seconds = time.perf_counter() - started
    assert again.cache_hit
    return Figures(loaded.used_seconds, load_seconds, first_seconds, cached_seconds, parameters)


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
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny Demucs: checks the code runs")
    args = parser.parse_args()
    figures = measure(args.seconds, args.tiny)
    print(f"Machine: {machine()}; torch {torch.__version__}")
    for line in figures.lines():
        print(line)


if __name__ == "__main__":
    main()
