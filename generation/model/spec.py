"""Which MusicGen an engine runs and how: one frozen spec for the local engine, the remote one and the replicas.

``MusicGenEngine``, ``RemoteEngine`` and the Serve replica all take an ``EngineSpec``; a ``RemoteEngine`` sends
its spec with each request and the replica builds its engine from it. ``None`` fields are decided by the
``ServerConfig`` (``resolved``), the one place where the environment fills in what a caller left open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import ServerConfig
from ..errors import InvalidInputError
from .continuation import AUDIO_PROMPT_SECONDS
from .types import MELODY, TEXT

WINDOW_SECONDS = 30.0  # MusicGen's training window; longer tracks are continued window by window
EXTEND_STRIDE_SECONDS = 18.0  # new audio per continuation window; the other 12 s are the prompt (as audiocraft)
MAX_TAKES = 4  # takes of one request made at once: the 4-request batch where throughput stops growing on 2 cores
DECODINGS = ("static", "generate")
CPU_CACHES = ("float32", "bfloat16")


@dataclass(frozen=True)
class EngineSpec:
    """One engine's model and options; every field has a default, so ``EngineSpec(model_id=path)`` is a spec.

    Fast mode stores the decoder's linear layers as int8 on CPU and decodes with ``static_decoding``'s loop:
    about 2.5 times as fast as the exact path on 2 cores, and the audio differs slightly. The ``"static"``
    loop allocates a key/value cache once per window and runs a lean step (CUDA graphs on a GPU);
    ``"generate"`` is transformers' ``generate``, bit for bit as shipped. Tracks longer than ``window_seconds``
    continue ``window_seconds - extend_stride`` of the last window. Bad values raise ``ValueError`` naming them.
    """

    model_id: str | None = None  # a hub id or a save_pretrained folder; None: the config's model of this family
    family: str = TEXT  # "text" (MusicGen) or "melody" (MusicGen-Melody, which also follows a hummed melody)
    revision: str | None = None  # the hub branch, tag or commit; None: the default branch (unused for a folder)
    device: str | None = None  # "cpu", "cuda", "cuda:1", "mps"; None: MOODTAPE_DEVICE, else picked at load
    fast: bool | None = None  # int8 decoder on CPU; None: MOODTAPE_FAST_CPU (unset: fast on CPU, exact on a GPU)
    decoding: str | None = None  # "static" or "generate"; None: static in fast mode and on CUDA, else generate
    cpu_cache: str | None = None  # fast mode's key/value cache, "float32" or "bfloat16"; None: bfloat16 with AMX
    max_batch: int | None = None  # the most concurrent requests run as one batch; None: MOODTAPE_MAX_BATCH
    window_seconds: float = WINDOW_SECONDS  # audio one pass of the model makes
    extend_stride: float = EXTEND_STRIDE_SECONDS  # new audio per continuation window
    prompt_seconds: float | None = None  # an extend continues at most this much audio; None: 2/3 of a window, <= 20

    def __post_init__(self) -> None:
        if self.family not in (TEXT, MELODY):
            raise ValueError(f"family must be {TEXT!r} or {MELODY!r}, got {self.family!r}")
        if self.decoding not in (None, *DECODINGS):
            raise ValueError(f"decoding must be 'static' or 'generate', got {self.decoding!r} (None picks)")
        if self.cpu_cache not in (None, *CPU_CACHES):
            raise ValueError(f"cpu_cache must be 'float32' or 'bfloat16', got {self.cpu_cache!r} (None picks)")
        if self.max_batch is not None and (isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int)):
            raise ValueError(
                f"max_batch must be a whole number, got {self.max_batch!r} (None takes MOODTAPE_MAX_BATCH)"
            )
        if not 0 < self.window_seconds:
            raise ValueError(f"window_seconds must be above 0, got {self.window_seconds}")
        if not 0 < self.extend_stride < self.window_seconds:
            raise ValueError(
                f"extend_stride must be between 0 and window_seconds ({self.window_seconds}), got {self.extend_stride}"
            )
        if self.prompt_seconds is not None and not 0 < self.prompt_seconds < self.window_seconds:
            raise ValueError(
                f"prompt_seconds must be between 0 and window_seconds ({self.window_seconds}), "
                f"got {self.prompt_seconds}"
            )

    def resolved(self, config: ServerConfig) -> EngineSpec:
        """This spec with what ``config`` decides filled in; ``device`` stays None when it is left to the machine."""
        return replace(
            self,
            model_id=self.model_id or (config.text_model if self.family == TEXT else config.melody_model),
            device=self.device or config.device,
            fast=config.fast_cpu if self.fast is None else self.fast,
            max_batch=max(1, self.max_batch or config.max_batch),
            # the same share of a window as 20 s of 30 s, at most 20 s
            prompt_seconds=self.prompt_seconds
            or min(AUDIO_PROMPT_SECONDS, self.window_seconds * AUDIO_PROMPT_SECONDS / WINDOW_SECONDS),
        )


def check_takes(takes: object) -> int:
    """``takes`` when it is a whole number from 1 to ``MAX_TAKES``, else ``InvalidInputError`` naming it."""
    if isinstance(takes, bool) or not isinstance(takes, int) or not 1 <= takes <= MAX_TAKES:
        raise InvalidInputError(f"takes must be a whole number from 1 to {MAX_TAKES}, got {takes!r}.")
    return takes


class SpecEngine:
    """What the local and the remote engine share: the spec they were given, resolved by one config."""

    def __init__(self, spec: EngineSpec | None = None, config: ServerConfig | None = None):
        self.config = config or ServerConfig.from_env()
        self.spec = (spec or EngineSpec()).resolved(self.config)

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def max_batch(self) -> int:
        """The most concurrent requests run as one batch (a remote engine's replicas batch by their own setting)."""
        return self.spec.max_batch
