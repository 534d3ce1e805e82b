"""Turn EnCodec codes into audio piece by piece: for streaming, and for tracks longer than one window.

EnCodec's decoder has a recurrent layer and non-causal convolutions, so a piece
decoded on its own sounds different at its edges. Each piece is decoded with
``LEFT_CONTEXT_FRAMES`` of codes before it and ``RIGHT_MARGIN_FRAMES`` after it,
and only the middle is kept: the pieces then join without audible seams, and the
work per piece stays proportional to the piece, not to everything before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from .codes import frames_so_far

LEFT_CONTEXT_FRAMES = 50  # 1 s of codes before a piece: lets the decoder's LSTM settle
RIGHT_MARGIN_FRAMES = 5  # 0.1 s after a piece: covers the convolutions' look-ahead
DECODE_PIECE_FRAMES = 500  # long sequences are decoded 10 s at a time
CONV_CHUNK_FRAMES = 100  # fast mode: the convolutions after the recurrent layer run 2 s of frames at a time


def decode_range(
    codec: Any, codes: torch.Tensor, start: int, end: int, channels: int = 1, chunked: bool = False
) -> np.ndarray:
    """Audio ``[channels, samples]`` for code frames ``start:end`` of ``codes`` ``[codebooks*channels, frames]``.

    Uses up to ``LEFT_CONTEXT_FRAMES`` before ``start`` and ``RIGHT_MARGIN_FRAMES`` after ``end`` when they exist.
    ``chunked``: as ``decode_whole``'s.
    """
    total = codes.shape[-1]
    if not 0 <= start < end <= total:
        raise ValueError(f"frames {start}:{end} are outside 0:{total}")
    lo, hi = max(0, start - LEFT_CONTEXT_FRAMES), min(total, end + RIGHT_MARGIN_FRAMES)
    hop = int(np.prod(codec.config.upsampling_ratios))
    outputs = []
    for channel in range(channels):
        rows = codes[channel::channels] if channels > 1 else codes
        audio = _decode_rows(codec, rows[:, lo:hi], chunked)
        outputs.append(audio[0, 0, (start - lo) * hop : (end - lo) * hop].float().cpu().numpy())
    return np.stack(outputs).astype(np.float32)


def decode_all(codec: Any, codes: torch.Tensor, channels: int = 1, start: int = 0, chunked: bool = False) -> np.ndarray:
    """Audio for frames ``start:`` of ``codes``, decoded ``DECODE_PIECE_FRAMES`` at a time (bounded memory).

    An extend passes ``start`` past its audio prompt: the new audio is decoded with the prompt as context.
    ``chunked``: as ``decode_whole``'s.
    """
    total = codes.shape[-1]
    pieces = [
        decode_range(codec, codes, piece, min(total, piece + DECODE_PIECE_FRAMES), channels, chunked)
        for piece in range(start, total, DECODE_PIECE_FRAMES)
    ]
    return np.concatenate(pieces, axis=-1)


def decode_whole(codec: Any, codes: torch.Tensor, channels: int = 1, chunked: bool = False) -> np.ndarray:
    """Audio ``[channels, samples]`` for all of one request's ``codes`` in one call, as ``generate`` decodes.

    One request at a time: EnCodec decoding a batch rounds differently (by about 1e-7) from decoding one
    request, so decoding each request alone keeps a batched request's audio equal to the same request alone.
    ``chunked`` (fast mode) runs the convolutions after the recurrent layer ``CONV_CHUNK_FRAMES`` at a time:
    the same values up to rounding (about 1e-7), a quarter less time on 2 cores.
    """
    outputs = []
    for channel in range(channels):
        rows = codes[channel::channels] if channels > 1 else codes
        outputs.append(_decode_rows(codec, rows, chunked)[0, 0].float().cpu().numpy())
    return np.stack(outputs).astype(np.float32)


def _decode_rows(codec: Any, rows: torch.Tensor, chunked: bool) -> torch.Tensor:
    """Audio ``[1, 1, samples]`` for one channel's codes ``[codebooks, frames]``."""
    with torch.inference_mode():
        if chunked:
            return _decode_in_chunks(codec, rows)
        # The class's decode: while a long track's window generates, the engine turns the instance's off
        return type(codec).decode(codec, rows[None, None], audio_scales=[None]).audio_values


def _decode_in_chunks(codec: Any, rows: torch.Tensor) -> torch.Tensor:
    """EnCodec's decode of ``rows`` ``[codebooks, frames]`` (one channel), its last layers chunk by chunk.

    The layers after the recurrent one upsample 640 times through convolutions that reach about a frame to
    either side (one frame of margin already gives the whole decode's samples up to rounding), and at full rate
    their tensors (64 channels x 320,000 samples for 10 s, 82 MB each) do not stay in cache. Run over
    ``CONV_CHUNK_FRAMES`` with ``RIGHT_MARGIN_FRAMES`` of real neighbours on each side (their edges padded by
    reflection, as the whole sequence's ends are), then trimmed, the chunks give the whole sequence's samples;
    measured on musicgen-small's codec, 10 s: 0.61-0.80 s against 0.91-1.02.
    """
    layers = list(codec.decoder.layers)
    recurrent = max(i for i, layer in enumerate(layers) if hasattr(layer, "lstm"))
    hidden = codec.quantizer.decode(rows[:, None])  # [1, dim, frames], as ``_decode_frame`` computes it
    for layer in layers[: recurrent + 1]:
        hidden = layer(hidden)
    hop = int(np.prod(codec.config.upsampling_ratios))
    total = hidden.shape[-1]
    pieces = []
    for start in range(0, total, CONV_CHUNK_FRAMES):
        end = min(total, start + CONV_CHUNK_FRAMES)
        lo, hi = max(0, start - RIGHT_MARGIN_FRAMES), min(total, end + RIGHT_MARGIN_FRAMES)
        piece = hidden[..., lo:hi]
        for layer in layers[recurrent + 1 :]:
            piece = layer(piece)
        pieces.append(piece[..., (start - lo) * hop : (end - lo) * hop])
    return torch.cat(pieces, dim=-1)


class StreamingDecoder:
    """Feeds new audio to a callback as code frames complete during generation.

    ``first_frames`` sets how soon the first piece is sent (small: the listener hears
    something early); later pieces carry ``every_frames``. The last ``RIGHT_MARGIN_FRAMES``
    are held back until more codes arrive or ``finish`` is called. Frames before ``start``
    (an extend's audio prompt) are context, never sent.
    """

    def __init__(
        self,
        codec: Any,
        on_audio,
        *,
        first_frames: int = 15,
        every_frames: int = 75,
        channels: int = 1,
        start: int = 0,
    ):
        self.codec, self.on_audio, self.channels = codec, on_audio, channels
        self.first_frames, self.every_frames = first_frames, every_frames
        self.start = self.sent = start  # frames already sent as audio (or not to send)

    def update(self, codes: torch.Tensor) -> None:
        """Offer the codes so far ``[rows, frames]``; sends a piece when enough new frames are safe to decode."""
        safe = codes.shape[-1] - RIGHT_MARGIN_FRAMES
        wanted = self.first_frames if self.sent == self.start else self.every_frames
        if safe - self.sent >= wanted:
            self._send(codes, safe)

    def finish(self, codes: torch.Tensor) -> None:
        """Send whatever is left once generation is over."""
        if codes.shape[-1] > self.sent:
            self._send(codes, codes.shape[-1])

    def _send(self, codes: torch.Tensor, end: int) -> None:
        audio = decode_range(self.codec, codes, self.sent, end, self.channels)
        self.sent = end
        self.on_audio(audio)


def stream_hook(
    streamer: StreamingDecoder, rows: slice, codebooks: int, channels: int, prompt_frames: int, earlier
) -> Callable[[Any, int], None]:
    """A per-step callback that hands one request's complete frames so far to its streaming decoder."""

    def on_tokens(ids, step: int) -> None:
        streamer.update(frames_so_far(ids[rows], step - codebooks + 1, channels, prompt_frames, earlier))

    return on_tokens


@contextlib.contextmanager
def without_decoding(codec: Any) -> Iterator[None]:
    """Within the block, ``codec.decode`` returns no audio.

    ``generate`` always decodes what it made; a long track's windows would each decode up to 30 s
    that is thrown away (measured: 1.7 s for a 14 s window on 2 cores), as the track is decoded whole.
    """

    def no_audio(audio_codes, *args, **kwargs):
        batch = audio_codes.shape[1]  # codes are [chunks, batch, codebooks, frames]
        return SimpleNamespace(audio_values=audio_codes.new_zeros((batch, 1, 0), dtype=codec.dtype))

    codec.decode = no_audio
    try:
        yield
    finally:
        del codec.decode  # the class's own method again
