"""A negative prompt: its text takes the empty text's place in classifier-free guidance's unconditional half.

Guidance samples from ``uncond + (cond - uncond) * scale``, so whatever conditions the unconditional half is
steered away from. transformers' MusicGen has no negative prompt (``negative_prompt_ids`` is refused): it
builds that half as zeros inside one method, ``_prepare_text_encoder_kwargs_for_generation`` (MusicGen-Melody:
``_prepare_encoder_hidden_states_kwargs_for_generation``). ``negative_guidance`` wraps that one method for
one ``generate`` call: after transformers has built both halves, the rows of requests that have a negative
prompt get its encoder states (and mask) instead of zeros; rows without one keep transformers' zeros. The
melody model's negative half keeps transformers' null chroma: the melody conditions only the positive half.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# The method that builds guidance's two halves, per family (the melody model has no text-encoder one).
_BUILDERS = ("_prepare_encoder_hidden_states_kwargs_for_generation", "_prepare_text_encoder_kwargs_for_generation")


@dataclass(frozen=True)
class NegativePrompts:
    """A batch's negative prompts as tokens, padded to the prompts' length; ``rows`` are the requests with one."""

    input_ids: torch.Tensor  # [len(rows), tokens]
    attention_mask: torch.Tensor  # [len(rows), tokens]
    rows: tuple[int, ...]  # indices into the batch

    def to(self, device: str | torch.device) -> NegativePrompts:
        return NegativePrompts(self.input_ids.to(device), self.attention_mask.to(device), self.rows)


def tokenize(
    tokenizer: Any, prompts: Sequence[str], negatives: Sequence[str], max_length: int
) -> tuple[dict[str, torch.Tensor], NegativePrompts | None]:
    """Token ids and masks for ``prompts``, and the non-empty ``negatives``, from one padded call.

    One call pads both to one length, which guidance needs (both halves run as one batch). Without negative
    prompts the call is exactly the one the prompts alone would make.
    """
    wanted = tuple(i for i, text in enumerate(negatives) if text)
    texts = [*prompts, *(negatives[i] for i in wanted)]
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask, n = tokens["input_ids"], tokens["attention_mask"], len(prompts)
    negative = NegativePrompts(ids[n:], mask[n:], wanted) if wanted else None
    return {"input_ids": ids[:n], "attention_mask": mask[:n]}, negative


@contextlib.contextmanager
def negative_guidance(model: Any, negative: NegativePrompts | None) -> Iterator[None]:
    """Within the block, ``model.generate`` conditions guidance's unconditional half on ``negative``.

    The wrapper is an attribute of this model instance only, removed on exit: other models, even ones that
    share its weights, are untouched. Callers run one ``generate`` at a time per model (the engine runs all
    torch work on its one model thread, under the engine's lock), so no other call sees the wrapper.
    """
    if negative is None:
        yield
        return
    name = next(n for n in _BUILDERS if hasattr(type(model), n))
    shipped = getattr(model, name)

    def build_with_negatives(inputs_tensor, model_kwargs, *args, **kwargs):
        model_kwargs = shipped(inputs_tensor, model_kwargs, *args, **kwargs)
        _put_negatives(model, model_kwargs, negative, batch=inputs_tensor.shape[0])
        return model_kwargs

    setattr(model, name, build_with_negatives)
    try:
        yield
    finally:
        delattr(model, name)  # the class's own method again


def _put_negatives(model: Any, model_kwargs: dict[str, Any], negative: NegativePrompts, batch: int) -> None:
    """Replace the unconditional rows of the negative prompts' requests with the negative text's states."""
    cross_attention = "encoder_outputs" in model_kwargs  # MusicGen; MusicGen-Melody reads a prefix instead
    states = (
        model_kwargs["encoder_outputs"].last_hidden_state if cross_attention else model_kwargs["encoder_hidden_states"]
    )
    if states.shape[0] != 2 * batch:
        return  # no guidance in this call, so no unconditional half
    rows = torch.tensor([batch + i for i in negative.rows], device=states.device)
    text = model.text_encoder(
        input_ids=negative.input_ids, attention_mask=negative.attention_mask, return_dict=True
    ).last_hidden_state
    if cross_attention:  # raw T5 states and their mask, as transformers builds the positive half
        from transformers.modeling_outputs import BaseModelOutput

        model_kwargs["encoder_outputs"] = BaseModelOutput(last_hidden_state=states.index_copy(0, rows, text))
        mask = model_kwargs.get("attention_mask")
        if mask is not None:  # without one, transformers attends to every position of both halves
            model_kwargs["attention_mask"] = mask.index_copy(0, rows, negative.attention_mask.to(mask.dtype))
        return
    # A prefix of [chroma, projected text * mask], as transformers builds the positive half; the chroma part
    # stays transformers' null chroma, so the melody conditions only the positive half.
    if model.text_encoder.config.hidden_size != model.decoder.config.hidden_size:
        text = model.enc_to_dec_proj(text)
    text = text * negative.attention_mask[..., None]
    replaced = states[rows].clone()
    replaced[:, -text.shape[1] :] = text.to(states.dtype)
    model_kwargs["encoder_hidden_states"] = states.index_copy(0, rows, replaced)
