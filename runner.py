"""The bridge between Gradio handlers and ``generation.Studio``: threads, progress, streaming, cancel, errors."""

from __future__ import annotations

import contextvars
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gradio as gr
import numpy as np

from generation.errors import GenerationCancelled, MoodtapeError
from generation.studio import Studio, Track, TrackRequest

log = logging.getLogger("moodtape.runner")

TICK_S = 0.5  # how often a handler reports progress and gives Gradio a chance to cancel it
TIMEOUT_ENV = "MOODTAPE_REQUEST_TIMEOUT_S"  # a request running longer than this is stopped with a clear message
DEFAULT_TIMEOUT_S = 1800.0
# what every endpoint ends with
RESULT_NAMES = ("audio", "downloads", "recipe", "summary", "melody_picture", "picture", "stems_picture")


class TrackRunner:
    """Runs studio requests on worker threads and speaks Gradio: progress bars, streamed chunks, ``gr.Error``.

    When Gradio cancels a handler (the Stop button, or a client's ``job.cancel()``), the
    handler's generator is closed and the generation thread is told to stop.
    """

    def __init__(self, studio: Studio, workers: int = 8, timeout_s: float | None = None):
        from gpu import track_maker

        self.studio = studio
        self._make_track = track_maker(studio)
        self.timeout_s = timeout_s or float(os.environ.get(TIMEOUT_ENV, "") or DEFAULT_TIMEOUT_S)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moodtape-gen")

    def run(self, request: TrackRequest, progress: gr.Progress, *, stream_to: str | None = None) -> Iterator[tuple]:
        """Yield while the track is made, then the results; errors become ``gr.Error``.

        ``stream_to`` is ``None`` (yield nothing but keep-alives), ``"player"`` (yield WAV bytes
        for a streaming ``gr.Audio``, first in each tuple) or ``"files"`` (yield each piece as a
        small WAV file path, first in each tuple, for API clients).
        """
        cancel = threading.Event()
        steps = {"done": 0, "total": 0}
        pieces: queue.Queue[np.ndarray | None] = queue.Queue()

        def on_progress(done: int, total: int) -> None:
            steps["done"], steps["total"] = done, total

        on_audio = pieces.put if stream_to else None  # None in the queue only wakes the loop
        context = contextvars.copy_context()  # Gradio's request context, for code that looks it up
        future: Future[Track] = self._pool.submit(
            context.run, self._make_track, request, on_progress=on_progress, cancel=cancel, on_audio=on_audio
        )
        future.add_done_callback(lambda f: _log_if_cancelled(f, steps))
        future.add_done_callback(lambda f: pieces.put(None))  # wakes the loop below as soon as the track is done
        # API clients see a skip as an update dict: they get None in slots that have nothing yet.
        filler = None if stream_to == "files" else gr.skip()
        skip_all = (filler,) * (len(RESULT_NAMES) + (1 if stream_to else 0))
        started = time.monotonic()
        try:
            progress(0, desc="Waiting for the model…")
            while not future.done() or not pieces.empty():
                if time.monotonic() - started > self.timeout_s:
                    cancel.set()
                    raise gr.Error(
                        f"This request took longer than the server's limit of {self.timeout_s:g} s and was stopped. "
                        "Try a shorter duration (or the fast CPU mode).",
                        title="Too slow",
                    )
                try:
                    piece = pieces.get(timeout=TICK_S)
                except queue.Empty:
                    piece = None
                if steps["total"]:
                    progress((steps["done"], steps["total"]), desc="Generating", unit="steps")
                if piece is not None and stream_to:
                    chunk = _wav_bytes(piece, self.studio.sample_rate_for(with_melody=bool(request.melody)))
                    if stream_to == "files":
                        chunk = self.studio.write_stream_piece(chunk)
                    yield (chunk, *skip_all[1:])
                else:
                    yield skip_all
            track = future.result()
        except gr.Error:
            raise
        except GenerationCancelled as e:
            raise gr.Error("Cancelled: the track was not finished.") from e
        except MoodtapeError as e:
            raise gr.Error(str(e), title="Can't make this track") from e
        except Exception as e:
            log.exception("Generation failed")
            raise gr.Error(
                f"Something went wrong inside the generator ({type(e).__name__}). The server is still running: "
                "try again, or try a shorter duration.",
                title="Generation failed",
            ) from e
        finally:
            cancel.set()  # when Gradio cancels this handler, stop the generation thread too
        results = results_for(track)
        yield (filler, *results) if stream_to else results


def results_for(track: Track) -> tuple[Any, ...]:
    """The values of ``RESULT_NAMES`` for one finished track."""
    return (
        str(track.wav_path),
        [str(p) for p in track.files],
        track.recipe.to_dict(),
        track.summary(),
        track.melody_picture,
        track.picture,
        track.stems_picture,
    )


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio.T, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _log_if_cancelled(future: Future, steps: dict[str, int]) -> None:
    if not future.cancelled() and isinstance(future.exception(), GenerationCancelled):
        log.info("Generation cancelled by the client after %d of %d steps", steps["done"], steps["total"])
