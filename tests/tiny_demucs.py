"""Build a tiny, randomly initialised Hybrid Transformer Demucs, so stem tests never download.

It is the class htdemucs uses (``demucs.htdemucs.HTDemucs``) with the same sources,
rate and channels, shrunk to about 360k parameters: 8 channels, depth 4 (short
transformer sequences keep it fast) and one cross-transformer layer, trained on
2 s segments. ``save_tiny_demucs`` writes it the way the hub repository
``adefossez/HTDemucs`` holds htdemucs: a bag ``htdemucs.yaml`` naming one
``<signature>.safetensors`` whose metadata carries the class and its arguments.

Run ``python -m tests.tiny_demucs FOLDER`` to build one for a manual demo
(``MOODTAPE_STEMS_MODEL=FOLDER``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

SOURCES = ("drums", "bass", "other", "vocals")
SAMPLERATE = 44_100
SIGNATURE = "0000tiny"  # the model's name inside the bag


def build_tiny_demucs(seed: int = 0):
    """A random HTDemucs with htdemucs' sources, rate and channels; in eval mode."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(
        sources=list(SOURCES),
        samplerate=SAMPLERATE,
        audio_channels=2,
        channels=8,
        depth=4,
        t_layers=1,
        segment=2,
    )
    return model.eval()


def save_tiny_demucs(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny model as a bag folder (``htdemucs.yaml`` + ``0000tiny.safetensors``); return the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_tiny_demucs(seed)
    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
    metadata = {
        "klass": f"{type(model).__module__}.{type(model).__name__}",
        "args": json.dumps(list(args)),
        "kwargs": json.dumps(kwargs),
    }
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / f"{SIGNATURE}.safetensors"), metadata=metadata)
    (folder / "htdemucs.yaml").write_text(f"models: ['{SIGNATURE}']\n")
    return folder


if __name__ == "__main__":
    print(save_tiny_demucs(sys.argv[1] if len(sys.argv) > 1 else "tiny-demucs"))
