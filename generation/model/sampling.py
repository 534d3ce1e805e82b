"""Per-request sampling inside one batched ``generate``: each row keeps its own seed and settings.

transformers samples a whole batch from one global random stream with one set
of settings, so a request's audio would depend on what it was batched with.
``SeededSampler`` replaces that step: it applies each request's guidance,
temperature, top-k and top-p, draws from the request's own seeded generator,
and hands ``generate`` (run greedy) logits whose arg-max is the drawn token.
The same seed and settings therefore give the same tokens alone or in a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import GenerationCancelled
from ..settings import GenerationSettings

CHOSEN, OTHER = 0.0, -1e4  # finite logits: guidance arithmetic on -inf would give NaN


@dataclass
class RowControl:
    """What one request in a batch asks of the step loop: progress, cancel, new tokens."""

    total_steps: int
    on_progress: Callable[[int, int], None] | None = None
    cancel: threading.Event | None = None
    on_tokens: Callable[[torch.Tensor, int], None] | None = None  # (ids so far [rows, 1+steps], step)
    cancelled: bool = field(default=False, init=False)


class SeededSampler:
    """A logits processor that samples each request of a batch with its own generator and settings.

    Rows of ``scores`` are ``[request0 codebooks..., request1 codebooks...]``, doubled
    (conditional half, then unconditional half) when any request uses guidance.
    """

    def __init__(self, settings: Sequence[GenerationSettings], rows_per_request: int, device: str | torch.device):
        self.settings = list(settings)
        self.rows = rows_per_request
        self.generators = [torch.Generator(device=device).manual_seed(s.seed) for s in self.settings]
        self.guided = any(s.guidance_scale > 1 for s in self.settings)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch_rows = input_ids.shape[0]
        chosen = self.choose(scores, batch_rows)
        picked = torch.full((batch_rows, scores.shape[-1]), OTHER, dtype=scores.dtype, device=scores.device)
        picked.scatter_(1, chosen[:, None], CHOSEN)
        # generate's own guidance step computes uncond + (cond - uncond) * scale: equal halves give `picked` back.
        return torch.cat([picked, picked]) if self.guided else picked

    def choose(self, scores: torch.Tensor, batch_rows: int) -> torch.Tensor:
        """One token per row ``[batch_rows]`` from ``scores`` (doubled for guidance): each request's own draw.

        ``static_decoding``'s loop calls this directly; ``generate`` reaches it through ``__call__``.
        """
        cond = scores[:batch_rows].float()
        uncond = scores[batch_rows:].float() if self.guided else None
        chosen = torch.empty(batch_rows, dtype=torch.long, device=scores.device)
        for i, (s, gen) in enumerate(zip(self.settings, self.generators, strict=True)):
            rows = slice(i * self.rows, (i + 1) * self.rows)
            logits = cond[rows]
            if uncond is not None and s.guidance_scale > 1:
                logits = uncond[rows] + (logits - uncond[rows]) * s.guidance_scale
            chosen[rows] = _sample(logits, s, gen)
        return chosen


def _sample(logits: torch.Tensor, s: GenerationSettings, generator: torch.Generator) -> torch.Tensor:
    """Temperature, then top-k, then top-p (transformers' order), then one draw per row."""
    logits = logits / s.temperature
    if 0 < s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < s.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) > s.top_p  # keep the token that crosses top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class StepWatcher:
    """A stopping criterion that never stops: per step it reports progress, streams tokens and honours cancels.

    transformers' composite MusicGen ``generate`` drops its ``streamer`` argument,
    so the per-step hook is a stopping criterion, which every step calls.
    """

    def __init__(self, controls: Sequence[RowControl]):
        self.controls = list(controls)
        self.done = 0
        self.last_ids: torch.Tensor | None = None  # [rows, 1 + steps]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.done += 1
        self.last_ids = input_ids
        live = 0
        for control in self.controls:
            if control.cancel is not None and control.cancel.is_set():
                control.cancelled = True
            if control.cancelled:
                continue
            live += 1
            if control.on_progress is not None:
                control.on_progress(min(self.done, control.total_steps), control.total_steps)
            if control.on_tokens is not None:
                control.on_tokens(input_ids, self.done)
        if live == 0:
            raise GenerationCancelled("Generation was cancelled.")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
