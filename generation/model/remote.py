"""The engine's interface over a Ray Serve cluster: the same calls as ``MusicGenEngine``, made on a replica.

Each call is one streaming request to the deployment that ``python -m serving`` made (``serving/``). The
replica answers with events, replayed here to the caller's callbacks: which worker took it, progress, pieces
of audio, then the result (or the error, as raised there). Stop reaches the replica: setting ``cancel``
cancels the Serve request, and the replica's engine drops that row while its batch-mates finish.

Faults: a replica that dies before it sent any audio gets the request again, once, on another replica (the
seed is drawn here, so the retry makes the same track); after audio was sent the request ends with
``WorkerLost``. A full waiting line ends it with ``ServerBusy`` at once, and the time limit with ``TimedOut``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from ..config import ServerConfig
from ..errors import (
    BUSY_MESSAGE,
    GenerationCancelled,
    ModelLoadError,
    ServerBusy,
    TimedOut,
    WorkerLost,
    brief,
)
from ..settings import GenerationSettings
from .spec import EngineSpec, SpecEngine, check_takes
from .types import AudioCallback, AudioPrompt, GeneratedAudio, Melody, ProgressCallback

SERVE_APP = "moodtape"  # the Serve application python -m serving deploys
DEPLOYMENT = "MusicGenReplica"  # its one deployment
WATCH_S = 0.1  # how often a waiting call looks at its cancel event and deadline
RETRY_NOTE = "The worker making this track stopped before sending any audio; another worker made it from the start."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteRequest:
    """One call of ``generate`` (``takes`` None) or ``generate_takes``, as it travels to a replica."""

    spec: EngineSpec  # resolved by the caller; the replica batches by its own max_batch
    settings: GenerationSettings  # with its seed: a retry on another replica makes the same track
    melody: Melody | None = None
    audio_prompt: AudioPrompt | None = None
    takes: int | None = None
    stream: bool = False  # send pieces of audio while they are made
    share_prompt: bool = False  # takes: a section's candidates, reading their audio prompt once (generate_takes)


@dataclass(frozen=True)
class Description:
    """What a replica says about a loaded model: what the local engine's properties would say."""

    sample_rate: int
    frame_rate: int
    model_revision: str | None
    device: str
    mode: str
    decoding: str
    worker: str


# The events a replica sends for one request, in order: one WORKER, any PROGRESS and AUDIO, then DONE or ERROR
WORKER, PROGRESS, AUDIO, DONE, ERROR = "worker", "progress", "audio", "done", "error"


class _ReplicaDied(Exception):
    """The replica serving a call stopped (its process died or became unreachable)."""


class RemoteEngine(SpecEngine):
    """MusicGen on the replicas of a Ray Serve cluster, behind ``MusicGenEngine``'s interface.

    ``spec`` is the local engine's and means the same; it travels with each request and the replica builds its
    engine from it (``device`` None lets the replica pick; ``max_batch`` is reported as given, while each replica
    batches by its own ``max_batch`` in ``serving/config.yaml``). Beyond what the replicas hold, Serve keeps a
    bounded waiting line that answers "busy" when full. ``app`` names the Serve application to use. The cluster is
    found the way Ray finds it: ``RAY_ADDRESS``, else the cluster started on this machine.
    """

    def __init__(self, spec: EngineSpec | None = None, *, config: ServerConfig | None = None, app: str = SERVE_APP):
        super().__init__(spec, config)
        self.app = app
        self._handle: Any = None
        self._about: Description | None = None

    @property
    def loaded(self) -> bool:
        return self._about is not None

    @property
    def device(self) -> str:
        """The replicas' device once loaded; before that, the one asked for (or "cluster")."""
        return self._about.device if self._about else (self.spec.device or "cluster")

    @property
    def mode(self) -> str:
        if self._about:
            return self._about.mode
        return "fast" if self.spec.fast is not False and self.spec.device in (None, "cpu") else "exact"

    @property
    def decoding(self) -> str:
        """The replicas' decoding loop once loaded; before that, the one asked for (or "auto")."""
        return self._about.decoding if self._about else (self.spec.decoding or "auto")

    @property
    def sample_rate(self) -> int:
        return self._describe().sample_rate

    @property
    def frame_rate(self) -> int:
        return self._describe().frame_rate

    @property
    def model_revision(self) -> str | None:
        return self._describe().model_revision

    def load(self) -> None:
        """Connect to the cluster and have a replica load the model (the others load it on their first request)."""
        self._describe()

    def unload(self) -> None:
        """Forget what the replicas said; each replica frees models itself, past its own ``max_loaded_models``."""
        self._about = None

    def _describe(self) -> Description:
        if self._about is None:
            handle = self._connect()
            try:
                about = handle.describe.remote(self.spec).result(timeout_s=self.config.request_timeout_s)
            except Exception as e:
                raise ModelLoadError(
                    f"The cluster could not load the model '{self.model_id}': {brief(e)}. Check that every "
                    "replica can read it (a hub id, or a folder at the same path on each machine)."
                ) from e
            if isinstance(about, Exception):  # the replica's own error, such as a model it cannot load
                raise about
            self._about = about
        return self._about

    def _connect(self) -> Any:
        """The deployment's handle; connects this process to the cluster on first use."""
        if self._handle is None:
            self._handle = _deployment_handle(self.app)
        return self._handle

    def generate(
        self,
        settings: GenerationSettings,
        *,
        melody: Melody | None = None,
        audio_prompt: AudioPrompt | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_audio: AudioCallback | None = None,
    ) -> GeneratedAudio:
        """As ``MusicGenEngine.generate``, made on a replica; ``worker`` on the result names it."""
        request = RemoteRequest(self.spec, settings.with_seed(), melody, audio_prompt, stream=on_audio is not None)
        return self._run(request, on_progress, cancel, on_audio)

    def generate_takes(
        self,
        settings: GenerationSettings,
        takes: int,
        *,
        melody: Melody | None = None,
        audio_prompt: AudioPrompt | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        share_prompt: bool = False,
    ) -> list[GeneratedAudio]:
        """As ``MusicGenEngine.generate_takes``: every take on one replica, as one batch."""
        check_takes(takes)
        request = RemoteRequest(
            self.spec, settings.with_seed(), melody, audio_prompt, takes=takes, share_prompt=share_prompt
        )
        return self._run(request, on_progress, cancel, None)

    def _run(self, request: RemoteRequest, on_progress, cancel, on_audio) -> Any:
        """Send the request; once more to another replica if the first died before sending audio."""
        # 1. Check the cluster is there (a clear ModelLoadError if not) and start the clock
        handle = self._connect()
        deadline = time.monotonic() + self.config.request_timeout_s
        # 2. Send it; a replica that dies before any audio reached the caller costs one retry
        for attempt in (1, 2):
            call = _Call(handle, request, cancel, deadline, self.config.request_timeout_s)
            try:
                result = call.run(on_progress, on_audio)
            except _ReplicaDied as e:
                if call.pieces:
                    raise WorkerLost(
                        f"The worker making this track ({call.worker or 'a replica'}) stopped after sending "
                        f"{call.pieces} piece(s) of audio, so the rest cannot follow on. Please make it again: the "
                        f"same seed ({request.settings.seed}) gives the same track."
                    ) from e
                if attempt == 2:
                    raise WorkerLost(
                        "Two workers stopped in turn while making this track. The cluster is restarting them: "
                        "please try again in a moment."
                    ) from e
                log.warning("Worker %s stopped before sending audio (%s); retrying once", call.worker, e)
                continue
            # 3. Say so on a retried result: it came from another worker than the one first asked
            if attempt == 1:
                return result
            if isinstance(result, list):
                return [replace(one, notes=(*one.notes, RETRY_NOTE)) for one in result]
            return replace(result, notes=(*result.notes, RETRY_NOTE))
        raise AssertionError("unreachable")


class _Call:
    """One streaming request to one replica, replayed to the caller's callbacks; stopped by cancel or deadline."""

    def __init__(self, handle: Any, request: RemoteRequest, cancel, deadline: float, limit_s: float):
        self.handle, self.request, self.cancel = handle, request, cancel
        self.deadline, self.limit_s = deadline, limit_s
        self.worker: str | None = None
        self.pieces = 0  # pieces of audio handed to the caller
        self.timed_out = False

    def run(self, on_progress: ProgressCallback | None, on_audio: AudioCallback | None) -> Any:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, RequestCancelledError

        response = self.handle.options(stream=True).generate.remote(self.request)
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(response, finished), name="moodtape-remote", daemon=True)
        watcher.start()
        try:
            for event in response:
                kind = event[0]
                if kind == WORKER:
                    self.worker = event[1]
                elif kind == PROGRESS and on_progress is not None:
                    on_progress(event[1], event[2])
                elif kind == AUDIO and on_audio is not None:
                    self.pieces += 1
                    on_audio(event[1])
                elif kind == DONE:
                    return event[1]
                elif kind == ERROR:
                    raise self._stopped() if isinstance(event[1], GenerationCancelled) else event[1]
            raise _ReplicaDied("the replica's answer ended without a result")
        except BackPressureError as e:
            raise ServerBusy(BUSY_MESSAGE) from e
        except RequestCancelledError as e:
            raise self._stopped() from e
        except RayActorError as e:
            if self.timed_out or (self.cancel is not None and self.cancel.is_set()):
                raise self._stopped() from e
            raise _ReplicaDied(brief(e)) from e
        finally:
            finished.set()

    def _stopped(self) -> Exception:
        if self.timed_out:
            return TimedOut(
                f"This request took longer than the server's limit of {self.limit_s:g} s and was stopped. "
                "Try a shorter duration, or try again when the cluster is less busy."
            )
        return GenerationCancelled("Generation was cancelled.")

    def _watch(self, response: Any, finished: threading.Event) -> None:
        """Cancel the Serve request when the caller cancels or the time limit passes (it may still be queued)."""
        while not finished.wait(WATCH_S):
            if time.monotonic() > self.deadline:
                self.timed_out = True
            if self.timed_out or (self.cancel is not None and self.cancel.is_set()):
                response.cancel()
                return


_connect_lock = threading.Lock()


def _deployment_handle(app: str) -> Any:
    """Join the Ray cluster (once per process) and return the handle of Moodtape's deployment in ``app``."""
    import ray
    from ray import serve

    with _connect_lock:
        if not ray.is_initialized():
            try:
                # "auto": RAY_ADDRESS if set, else the cluster started on this machine; never a new local one
                ray.init(address="auto", logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ModelLoadError(
                    "MOODTAPE_BACKEND is ray, but no Ray cluster answered. Start one (`ray start --head`), "
                    "deploy the replicas (`python -m serving --replicas 2`), and set RAY_ADDRESS=host:port when "
                    f"the cluster is on another machine. Ray said: {brief(e)}"
                ) from e
        try:
            handle = serve.get_deployment_handle(DEPLOYMENT, app_name=app)
            serve.status()  # raises when Serve is not running on the cluster
        except Exception as e:
            raise ModelLoadError(
                f"The Ray cluster has no Moodtape replicas (Serve application '{app}'). Deploy them with "
                f"`python -m serving --replicas 2`. Ray said: {brief(e)}"
            ) from e
        if app not in serve.status().applications:
            raise ModelLoadError(
                f"The Ray cluster has no Serve application '{app}'. Deploy it with `python -m serving --replicas 2`."
            )
        return handle
