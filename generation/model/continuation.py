"""Audio to continue (an extend): the end of a clip, ready for the codec, and its EnCodec codes.

The codes become the code prompt of the first window, exactly as a long track's next window is
prompted with the end of the last one (see ``engine.py``). The melody model refuses transformers'
``input_values`` continuation, and codes work for both families, so both take this path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..audio.arrays import check_audio, resample
from ..errors import InvalidInputError
from .types import AudioPrompt

AUDIO_PROMPT_SECONDS = 20.0  # audio an extend continues: two thirds of the 30 s window, leaving 10 s new in it
RESAMPLE_MARGIN_SECONDS = 0.1  # extra audio resampled before the tail is cut, so the filter's edge falls outside
LEAD_IN_FRAMES = 5  # 0.1 s: the codec's decoding of the prompt's end, returned for the studio's crossfade


def prompt_samples(prompt: AudioPrompt, *, sample_rate: int, channels: int, hop: int, max_seconds: float) -> np.ndarray:
    """The last whole codec frames (at most ``max_seconds``) of ``prompt`` as float32 ``[channels, samples]``.

    Resampled to ``sample_rate`` and downmixed (or copied) to ``channels``. Whole frames are cut from the
    start, so the prompt ends exactly where the given audio ends and the new audio joins it there.
    """
    audio = check_audio(prompt.samples)
    rate = prompt.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidInputError(f"The audio to extend needs a positive whole sample rate, got {rate!r}.")
    seconds = audio.shape[-1] / rate
    # Only the tail is resampled: a five-minute track costs no more than a 20 s one
    tail = round((max_seconds + RESAMPLE_MARGIN_SECONDS) * rate)
    audio = resample(audio[:, -tail:], int(rate), sample_rate)
    if channels == 1:
        audio = audio.mean(axis=0, keepdims=True)
    elif audio.shape[0] == 1:
        audio = np.repeat(audio, channels, axis=0)
    frames = min(audio.shape[-1], round(max_seconds * sample_rate)) // hop
    if frames == 0:
        raise InvalidInputError(
            f"The audio to extend is {seconds:.3f} s long; it must be at least one codec frame "
            f"({1000 * hop / sample_rate:g} ms), and a few seconds give the model something to continue."
        )
    return np.ascontiguousarray(audio[:, audio.shape[-1] - frames * hop :], dtype=np.float32)


def encode_prompt(codec: Any, samples: np.ndarray, num_codebooks: int) -> Any:
    """EnCodec codes ``[num_codebooks * channels, frames]`` for ``samples`` ``[channels, samples]``.

    Stereo rows interleave left and right per codebook (L1, R1, L2, R2, ...), as the stereo decoders read
    them; each channel goes through the mono codec on its own, as transformers does.
    """
    import torch

    rows = []
    with torch.inference_mode():
        for channel in samples:
            # a copy: the samples may be read-only
            values = torch.tensor(channel, device=codec.device, dtype=codec.dtype)[None, None]
            codes = codec.encode(values).audio_codes  # [chunks, batch, codebooks, frames]; MusicGen's codec: 1 chunk
            if codes.shape[0] != 1 or codes.shape[2] < num_codebooks:
                raise RuntimeError(
                    f"The codec gave {codes.shape[2]} codebooks in {codes.shape[0]} chunks; the decoder reads "
                    f"{num_codebooks} codebooks in one chunk."
                )
            # Residual quantisation: the first codebooks are the coarse ones. MusicGen's 2.2 kbps codec gives
            # exactly 4; a smaller random test codec gives more at that bandwidth.
            rows.append(codes[0, 0, :num_codebooks])
    return torch.stack(rows, dim=1).reshape(num_codebooks * len(rows), -1)
