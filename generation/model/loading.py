"""Load a MusicGen checkpoint (hub id or folder) onto a device, in the exact or the fast CPU form."""

from __future__ import annotations

import copy
import itertools
import logging
import time
import warnings
from typing import Any

from ..errors import ModelLoadError
from ..hub import load_failure_message
from .types import TEXT

LOCAL_FORM = "a folder saved with save_pretrained (config.json, weights, tokenizer and processor files)"

log = logging.getLogger(__name__)


def pick_device(forced: str | None = None) -> str:
    """``forced`` (``MOODTAPE_DEVICE``) when given, else CUDA, then Apple MPS, then CPU."""
    import torch

    if forced:
        return forced
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_checkpoint(
    model_id: str, family: str, *, revision: str | None, device: str, fast: bool, env: str, offline: bool
) -> tuple[Any, Any]:
    """The model (bfloat16 on a CUDA GPU that has it, else float16; float32 elsewhere) and its processor.

    ``fast`` turns the decoder into fast mode's int8 form (see ``quantize_decoder``); otherwise its
    layers become lean layers, bit for bit the same. ``env`` and ``offline`` word the failure message.
    """
    import torch

    dtype = gpu_dtype() if device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    try:
        if family == TEXT:
            from transformers import AutoProcessor, MusicgenForConditionalGeneration

            processor = AutoProcessor.from_pretrained(model_id, revision=revision)
            model_class = MusicgenForConditionalGeneration
        else:
            from transformers import MusicgenMelodyForConditionalGeneration

            from .chroma import MelodyProcessor

            processor = MelodyProcessor.from_pretrained(model_id, revision=revision)
            model_class = MusicgenMelodyForConditionalGeneration
        model = model_class.from_pretrained(model_id, revision=revision, dtype=dtype)
    except Exception as e:  # transformers raises OSError, ValueError, HF hub errors...
        message = load_failure_message(
            model_id, e, what="MusicGen model", env=env, local_form=LOCAL_FORM, offline=offline
        )
        raise ModelLoadError(message) from e
    model = prepare_for_generation(model, device, fast)
    mode = "fast" if fast else "exact"
    log.info("Loaded %s on %s (%s, %s) in %.1f s", model_id, device, dtype, mode, time.perf_counter() - started)
    return model, processor


def gpu_dtype() -> Any:
    """bfloat16 where the GPU computes in it (Ampere and later: float16's range without its overflows), else
    float16 (a T4)."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def prepare_for_generation(model: Any, device: str, fast: bool) -> Any:
    """``model`` on ``device`` in eval mode with its decoder in fast mode's int8 form or as lean layers.

    On a GPU the audio codec stays float32: it is a small share of the work, and its recurrent layer and
    convolutions decode the codes to audio without half precision's rounding.
    """
    from .lean_layers import lean_layers

    model = model.to(device).eval()
    if device.startswith("cuda"):
        model.audio_encoder.float()
    model.decoder = quantize_decoder(model.decoder) if fast else lean_layers(model.decoder)
    if fast:
        quantize_codec_lstm(model.audio_encoder)
    return model


def quantize_codec_lstm(codec: Any) -> Any:
    """Fast mode's codec: the decoder's recurrent layer with int8 weights; returns ``codec``, changed in place.

    The LSTM is two thirds of decoding codes to audio on 2 CPU cores (its 500 sequential steps per 10 s each
    read 32 MB of float32 weights); int8 weights make decoding about a quarter faster. The encoder (an extend's
    audio prompt) keeps its float weights.
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.ao's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        codec.decoder = quantize_dynamic(codec.decoder, {torch.nn.LSTM}, dtype=torch.qint8, inplace=False)
    return codec


def quantize_decoder(decoder: Any) -> Any:
    """Fast mode's decoder, changed in place: joined QKV projections, int8 linear layers, lean layers.

    The float weight tensors are only read, so a decoder sharing them with another model may be passed.
    Weights are int8 with a scale per output channel; activations are quantised per call, each row with its own
    scale (``rowwise_int8``).
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from .lean_layers import join_qkv, lean_layers, rowwise_int8

    join_qkv(decoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.ao's deprecation notice; still the fastest CPU int8 path
        warnings.simplefilter("ignore", DeprecationWarning)
        quantized = quantize_dynamic(
            decoder, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    for module in quantized.modules():  # the heads too, which transformers' forward calls as modules
        call = rowwise_int8(module)
        if call is not None:
            module.forward = call
    return lean_layers(quantized)


def shared_weights_copy(module: Any) -> Any:
    """A copy of a module tree whose parameters and buffers are the original tensors (no weights are copied)."""
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, shared)
