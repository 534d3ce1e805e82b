"""The page's streaming preview: its stream reaches the player only with audio in it, even on a busy machine."""

from __future__ import annotations

import time

import anyio
import numpy as np

from runner import FIRST_SEGMENT_WAIT_S, PreviewPlayer, _wav_bytes
from tests.cpu_load import every_core_busy

RATE = 32_000


def first_chunk(player: PreviewPlayer, piece: bytes, stream: str):
    """What Gradio does with a run's first piece: the stream's first segment (or ``None``) and the player's value."""
    return anyio.run(player.stream_output, piece, stream, True)


def test_the_first_piece_opens_its_stream_with_audio_on_a_busy_machine():
    # Gradio's own gr.Audio waits 0.1 s for its encoder; with every core busy ffmpeg took up to 1.9 s to come up.
    player = PreviewPlayer(streaming=True)
    piece = _wav_bytes(np.zeros((1, 15 * 640), dtype=np.float32), RATE)  # the first piece: 15 codec frames, 0.3 s
    with every_core_busy():
        for run in range(5):
            stream = f"session/run-{run}/1/playlist.m3u8"
            try:
                segment, value = first_chunk(player, piece, stream)
            finally:
                player.end_stream_output(stream)
            assert segment is not None, f"run {run}: the stream opened with no audio"
            assert segment["duration"] > 0 and segment["data"][:2] == b"\xff\xf1"  # ADTS frames of AAC
            assert value["path"] == stream and value["is_stream"]


def test_a_piece_too_short_for_an_aac_frame_does_not_wait():
    # The encoder emits nothing until it has two frames' worth (2048 samples): waiting could only time out.
    player = PreviewPlayer(streaming=True)
    stream = "session/short/1/playlist.m3u8"
    started = time.monotonic()
    segment, _ = first_chunk(player, _wav_bytes(np.zeros((1, 1000), dtype=np.float32), RATE), stream)
    waited = time.monotonic() - started
    last = anyio.run(player.flush_stream_output, stream)  # the end of the run: the encoder gives what it holds
    assert segment is None and waited < FIRST_SEGMENT_WAIT_S
    assert last is not None and last["duration"] > 0
