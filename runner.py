"""The bridge between Gradio handlers and ``generation.Studio``: threads, progress, streaming, cancel, errors.

``TrackRunner.run`` yields what is happening, by kind: ``InProgress`` while the track is made (with a
piece of audio when one is ready) and ``Finished`` with the ``TrackResults`` at the end. The app turns
those into each endpoint's outputs.
"""

from __future__ import annotations

import contextvars
import io
import logging
import queue
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import anyio
import gradio as gr
import numpy as np

from generation.errors import GenerationCancelled, MoodtapeError
from generation.studio import Studio, Track, TrackRequest
from generation.timing import Stopwatch
from library_tab import OwnerRule, owner_rule_for, request_owner
from zerogpu import track_maker

log = logging.getLogger("moodtape.runner")

TICK_S = 0.5  # how often a handler reports progress and gives Gradio a chance to cancel it
QUEUE_POLL_S = 0.01  # how often Gradio's queue looks for a new job (its own default, 1 ms, spins; see quiet_queue)
PROGRESS_POLL_S = 0.1  # how often it sends pending progress (its default is 10 ms; progress comes every TICK_S)
# How long the preview's first piece waits for the AAC encoder's first frames (see PreviewPlayer) before the player
# gets its stream anyway: the wait ends as soon as they come, and no busy machine here took more than 2 s.
FIRST_SEGMENT_WAIT_S = 10.0
StreamTo = Literal["player", "files"] | None  # pieces as WAV bytes for a streaming gr.Audio, as files, or none


@dataclass(frozen=True, eq=False)  # eq=False: numpy pictures have no single truth value
class TrackResults:
    """What every endpoint ends with, in output order (the README's API section lists the same), and its takes."""

    audio: str  # the playable WAV's path (take 1's when there are several)
    downloads: list[str]  # every format, the recipe JSON, the stems and their ZIP; of every take
    recipe: dict[str, Any]
    summary: str
    melody_picture: np.ndarray | None  # the chroma of the melody followed, if any
    picture: np.ndarray | None  # waveform and spectrogram
    stems_picture: np.ndarray | None  # one panel per stem, if split
    # Each take as a result of its own (its files only), take 1 first; empty for one take. Not an output: the
    # page shows them side by side, and API clients find every take's files in the downloads.
    takes: tuple[TrackResults, ...] = field(default=(), metadata={"output": False})

    @classmethod
    def of(cls, track: Track) -> TrackResults:
        """The results of one finished track, its other takes included."""
        every = (track, *track.takes)
        takes = tuple(cls._of_take(take, take.files) for take in every) if track.takes else ()
        return cls._of_take(track, track.downloads, takes)

    @classmethod
    def _of_take(cls, take: Track, downloads: list[Path], takes: tuple[TrackResults, ...] = ()) -> TrackResults:
        return cls(
            audio=str(take.wav_path),
            downloads=[str(p) for p in downloads],
            recipe=take.recipe.to_dict(),
            summary=take.summary(),
            melody_picture=take.melody_picture,
            picture=take.picture,
            stems_picture=take.stems_picture,
            takes=takes,
        )

    def outputs(self) -> tuple[Any, ...]:
        """The values in output order, as Gradio takes them."""
        return tuple(getattr(self, name) for name in OUTPUTS)


OUTPUTS = tuple(f.name for f in fields(TrackResults) if f.metadata.get("output", True))
RESULT_COUNT = len(OUTPUTS)


@dataclass(frozen=True)
class InProgress:
    """The track is being made; ``piece`` is new audio (WAV bytes or a WAV file's path), or ``None`` for none yet."""

    piece: bytes | str | None = None


@dataclass(frozen=True)
class Finished:
    """The track is made."""

    results: TrackResults


class PreviewPlayer(gr.Audio):
    """A streaming ``gr.Audio`` whose stream reaches the page only once it holds audio.

    Gradio hands the page a stream's playlist with its first chunk, whether or not the AAC encoder has made a frame
    of it yet, and it waits only 0.1 s for the encoder's ffmpeg to come up. On a busy machine ffmpeg comes up later
    (0.15 s with other work running, up to 1.9 s with both cores spinning): the player then loads a playlist with
    no segments, and if the next piece is more than about 3 s away (or the run is cancelled, which ends the stream
    as it is) the browser's HLS player fails with "No Segments found in Playlist". Here the first chunk waits for
    the encoder's first frames instead.
    """

    is_template = True  # drawn by gr.Audio's own front end; see api_components.py

    async def stream_output(self, value: Any, output_id: str, first_chunk: bool) -> tuple[Any, Any]:
        chunk, output = await super().stream_output(value, output_id, first_chunk)
        if chunk is None and first_chunk and isinstance(value, bytes) and _fills_aac_frames(value):
            try:
                chunk = await anyio.to_thread.run_sync(_first_frames, output_id, abandon_on_cancel=True)
            except BaseException:
                # Cancelled (Stop) or the encoder failed: no stream holds the encoder yet, so end it here, as
                # Gradio does when its own first chunk fails. Ending it also wakes the abandoned wait.
                self.end_stream_output(output_id)
                raise
        return chunk, output


def _fills_aac_frames(wav: bytes) -> bool:
    """Whether ``wav`` is long enough for the AAC encoder to emit a frame before its input ends.

    The encoder holds back its first frame's worth of samples (its priming), so it needs two frames' worth before
    it emits one; three leaves room for the resampler's delay.
    """
    from gradio.audio_stream_encoder import AAC_FRAME_SAMPLES, nearest_adts_rate

    with wave.open(io.BytesIO(wav)) as audio:
        rate, frames = audio.getframerate(), audio.getnframes()
    return frames * nearest_adts_rate(rate) >= 3 * AAC_FRAME_SAMPLES * rate


def _first_frames(output_id: str) -> Any:
    """The first AAC frames of the stream ``output_id``, once its encoder makes them (``None`` if it never does).

    Gradio keeps each stream's encoder in a private registry and offers no public way to wait for its output;
    ``take`` with a timeout is the encoder's own call for this case. Without the registry (another Gradio
    version) the stream opens as Gradio opens it.
    """
    from gradio.audio_stream_encoder import segment_from_frames
    from gradio.components import audio

    slot = getattr(audio, "_stream_encoders", {}).get(output_id)
    encoder = getattr(slot, "encoder", None)
    if encoder is None:
        return None
    return segment_from_frames(encoder, encoder.take(timeout=FIRST_SEGMENT_WAIT_S))


class TrackRunner:
    """Runs studio requests on worker threads and speaks Gradio: progress bars, streamed pieces, ``gr.Error``.

    When Gradio cancels a handler (the Stop button, or a client's ``job.cancel()``), the
    handler's generator is closed and the generation thread is told to stop.
    """

    def __init__(
        self,
        studio: Studio,
        workers: int = 8,
        timeout_s: float | None = None,
        owner_rule: OwnerRule | None = None,
    ):
        self.studio = studio
        self.owner_rule = owner_rule or owner_rule_for(studio.config)  # whose library a request fills
        self._make_track = track_maker(studio)
        self.timeout_s = timeout_s or studio.config.request_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moodtape-gen")

    def run(
        self, request: TrackRequest, progress: gr.Progress, *, stream_to: StreamTo = None
    ) -> Iterator[InProgress | Finished]:
        """Yield ``InProgress`` while the track is made, then ``Finished``; errors become ``gr.Error``.

        ``stream_to`` says what a piece of audio becomes: ``None`` (no pieces, only ticks),
        ``"player"`` (WAV bytes for a streaming ``gr.Audio``) or ``"files"`` (the path of a small
        WAV file, for API clients).
        """
        owner = self.owner()  # now, in the handler: Gradio's request is at hand
        cancel = threading.Event()
        steps = {"done": 0, "total": 0}
        status: dict[str, Any] = {}  # the latest step before decoding: what it is and how far along
        pieces: queue.Queue[np.ndarray | None] = queue.Queue()

        def on_progress(done: int, total: int) -> None:
            steps["done"], steps["total"] = done, total

        def on_status(message: str, fraction: float) -> None:
            status["message"], status["fraction"] = message, fraction
            pieces.put(None)  # wakes the loop below: a short step (a cached or quick separation) still gets said

        on_audio = pieces.put if stream_to else None  # None in the queue only wakes the loop
        context = contextvars.copy_context()  # Gradio's request context, for code that looks it up
        future: Future[Track] = self._pool.submit(
            context.run,
            self._make_track,
            request,
            on_progress=on_progress,
            cancel=cancel,
            on_audio=on_audio,
            on_status=on_status,
        )
        future.add_done_callback(lambda f: _log_if_cancelled(f, steps))
        future.add_done_callback(lambda f: pieces.put(None))  # wakes the loop below as soon as the track is done
        started = time.monotonic()
        clock = Stopwatch()  # the handler's own stages, logged as one line (the studio logs the track's)
        clock_started = time.perf_counter()
        future.add_done_callback(lambda f: clock.add("track", time.perf_counter() - clock_started))
        try:
            progress(0, desc="Waiting for the model…")
            while not future.done() or not pieces.empty():
                self._stop_if_too_slow(started, cancel)
                piece = _next_piece(pieces)
                if steps["total"]:
                    progress((steps["done"], steps["total"]), desc="Generating", unit="steps")
                elif status:  # a step before decoding, such as taking a song's drums and bass out of its melody
                    progress(status["fraction"], desc=f"{status['message']}…")
                with clock.stage("pieces"):
                    encoded = self._encode(piece, request, stream_to)
                yield InProgress(encoded)
            with clock.stage("keep"):
                track = self._keep(future.result(), owner)
        except gr.Error:
            raise
        except Exception as e:
            raise _gradio_error(e) from e
        finally:
            cancel.set()  # when Gradio cancels this handler, stop the generation thread too
        with clock.stage("results"):
            results = TrackResults.of(track)
        clock.add("handler", time.perf_counter() - clock_started)
        clock.log(f"request {track.wav_path.parent.name}")
        yield Finished(results)

    def owner(self) -> str | None:
        """Whose library the request being handled reads and fills; None: an anonymous visitor, no library."""
        return request_owner(self.owner_rule)

    def _keep(self, track: Track, owner: str | None) -> Track:
        """The finished track moved into ``owner``'s library; left where it is, with a warning, when it cannot go."""
        try:
            return self.studio.keep(track, owner)
        except (MoodtapeError, OSError) as e:
            log.warning("A track was not kept in the library of %r: %s", owner, e)
            gr.Warning(f"This track was not kept in your library: {e}")
            return track

    def _stop_if_too_slow(self, started: float, cancel: threading.Event) -> None:
        if time.monotonic() - started > self.timeout_s:
            cancel.set()
            raise gr.Error(
                f"This request took longer than the server's limit of {self.timeout_s:g} s and was stopped. "
                "Try a shorter duration (or the fast CPU mode).",
                title="Too slow",
            )

    def _encode(self, piece: np.ndarray | None, request: TrackRequest, stream_to: StreamTo) -> bytes | str | None:
        """A piece of audio as ``stream_to`` wants it: WAV bytes, a WAV file's path, or nothing."""
        if piece is None or stream_to is None:
            return None
        wav = _wav_bytes(piece, self.studio.sample_rate_for(request))
        return self.studio.write_stream_piece(wav) if stream_to == "files" else wav


def quiet_queue(demo: gr.Blocks) -> None:
    """Slow the polling of ``demo``'s queue (call after ``demo.queue()``): it competes with the model for the cores.

    Gradio's queue wakes its event loop every 1 ms to look for new jobs, and every 10 ms to send progress, for as
    long as the server runs, a track being made included; each wake-up wants the interpreter lock that the model
    thread's Python between kernels holds. Every ``QUEUE_POLL_S`` (a new job starts at most that much later) and
    ``PROGRESS_POLL_S`` (the runner reports progress every ``TICK_S`` anyway) is enough. Gradio offers no setting
    for either; without them (another Gradio version) the queue is left as it is.
    """
    polling = getattr(demo, "_queue", None)
    for name, seconds in (("sleep_when_free", QUEUE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if isinstance(getattr(polling, name, None), float):
            setattr(polling, name, max(getattr(polling, name), seconds))


def _next_piece(pieces: queue.Queue[np.ndarray | None]) -> np.ndarray | None:
    """The next piece of audio, or ``None`` after a tick without one."""
    try:
        return pieces.get(timeout=TICK_S)
    except queue.Empty:
        return None


def _gradio_error(error: Exception) -> gr.Error:
    """What a person is told when making a track failed."""
    if isinstance(error, GenerationCancelled):
        return gr.Error("Cancelled: the track was not finished.")
    if isinstance(error, MoodtapeError):
        return gr.Error(str(error), title="Can't make this track")
    log.exception("Generation failed", exc_info=error)
    return gr.Error(
        f"Something went wrong inside the generator ({type(error).__name__}). The server is still running: "
        "try again, or try a shorter duration.",
        title="Generation failed",
    )


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio.T, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _log_if_cancelled(future: Future, steps: dict[str, int]) -> None:
    if not future.cancelled() and isinstance(future.exception(), GenerationCancelled):
        log.info("Generation cancelled by the client after %d of %d steps", steps["done"], steps["total"])
