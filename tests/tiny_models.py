"""Build tiny, randomly initialised MusicGen checkpoints on disk, so tests never download.

The checkpoints are real transformers checkpoints (config, weights, tokenizer,
processor, generation config) and load through the same ``from_pretrained`` path
as ``facebook/musicgen-small``. The model is ``tests.random_musicgen``'s ``TINY``,
with two things changed from a plain random init so that tests can see their
inputs matter:

* EnCodec's codebooks are randomised: a fresh codec has all-zero codebooks and
  decodes every token sequence to the same audio.
* The conditioning projection and the LM heads are scaled up: random text
  conditioning is otherwise far weaker than the sampling noise.

Run ``python -m tests.tiny_models FOLDER`` to build one for a manual demo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.random_musicgen import TINY, random_musicgen, text_processor


def tiny_model(family: str, seed: int = 0):
    """``TINY`` of ``family`` ("text" or "melody"), strengthened, with the real checkpoints' sampling defaults."""
    model = random_musicgen(TINY, family, seed)
    strengthen(model, seed)
    generation = model.generation_config
    generation.do_sample, generation.guidance_scale, generation.top_k, generation.max_length = True, 3.0, 250, 1500
    return model


def strengthen(model, seed: int) -> None:
    """Randomise codebooks and amplify conditioning so inputs visibly change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.copy_(5.0 * torch.randn(codebook.embed.shape, generator=gen))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
            codebook.inited.fill_(True)
        # Random conv biases add a large DC offset that drowns the signal.
        for name, param in model.audio_encoder.decoder.named_parameters():
            if name.endswith("bias"):
                param.zero_()
        proj = getattr(model, "enc_to_dec_proj", None)
        if proj is not None:
            proj.weight.mul_(40.0)
        for layer in model.decoder.model.decoder.layers:
            cross = getattr(layer, "encoder_attn", None)
            if cross is not None:
                cross.v_proj.weight.mul_(10.0)
                cross.out_proj.weight.mul_(10.0)
        for head in model.decoder.lm_heads:
            head.weight.mul_(6.0)


def build_text_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random MusicGen (text-conditioned) checkpoint into ``folder``."""
    folder = Path(folder)
    tiny_model("text", seed).save_pretrained(folder)
    text_processor().save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(build_text_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-musicgen"))
