"""MusicGen's code layout: undoing the codebook delay pattern, and seeds for continuation windows."""

from __future__ import annotations

from typing import Any


def undelay(ids: Any, frames: int, channels: int, rows_per_request: int | None = None, start: int = 0):
    """Frames ``start:start + frames`` per codebook, without MusicGen's delay pattern (codebook k starts k late).

    ``ids`` is ``[batch * rows, 1 + steps]`` (BOS first); returns ``[batch * rows, frames]``. With
    ``channels`` 2 (stereo), the rows alternate left and right and both channels of codebook k share delay k.
    """
    import torch

    per_request = rows_per_request or ids.shape[0]
    delays = [(r % per_request) // channels for r in range(ids.shape[0])]
    return torch.stack([ids[r, 1 + d + start : 1 + d + start + frames] for r, d in enumerate(delays)])


def frames_so_far(ids, new_complete: int, channels: int, prompt_frames: int, earlier=None):
    """All codes so far: ``earlier`` windows' codes, then this window's new frames complete in every codebook."""
    new = undelay(ids, max(0, new_complete), channels, start=prompt_frames)
    return new if earlier is None else join(earlier, new)


def join(a, b):
    """Codes ``a`` followed by codes ``b`` along time (the last axis)."""
    import torch

    return torch.cat([a, b], dim=-1)


def window_seed(seed: int, prompt_frames: int) -> int:
    """Each continuation window draws from its own stream, derived from the request's seed."""
    return seed if prompt_frames == 0 else (seed * 1_000_003 + prompt_frames) % (2**31 - 1)
