"""Hidden Gradio inputs for the API that keep what a client sent, so wrong types get a clear message.

``gr.Textbox`` turns anything into text (``["rainy", "piano"]`` becomes the prompt
"['rainy', 'piano']"); these pass text through, refuse other types naming the
parameter, take a list of formats as a list, and refuse a file that is not one by the parameter's name.

Each sets ``is_template`` (as Gradio's own ``gr.TextArea`` does): the page then draws it with its
parent's front end. Without it Gradio takes a subclass for a custom component and every page load
asks for its scripts and styles, nine requests that end in 404.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gradio as gr
from gradio.data_classes import FileData
from pydantic import ConfigDict, ValidationError

from generation.errors import quoted


class TextParameter(gr.Textbox):
    """A text parameter: text or nothing; anything else is refused with the parameter's name."""

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or isinstance(payload, str):
            return payload
        raise gr.Error(f"{self.label} must be text, got {type(payload).__name__}: {quoted(payload)}.")


class FormatsParameter(gr.Textbox):
    """Export formats: "wav,mp3" or ["wav", "mp3"]."""

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or isinstance(payload, str):
            return payload
        if isinstance(payload, (list, tuple)) and all(isinstance(item, str) for item in payload):
            return ",".join(payload)
        raise gr.Error(f"formats must be text like 'wav,mp3' or a list like ['wav', 'mp3'], got {quoted(payload)}.")


class _NamedFile(FileData):
    """FileData whose validation failure names its parameter (``refusal``) instead of quoting pydantic."""

    model_config = ConfigDict(title="FileData")  # the title gradio_client recognises a file parameter by
    refusal: ClassVar[str] = ""  # "<name> must be ..., or left out": what the client is told, before what it sent

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> FileData | None:
        if obj == "":  # an empty file means none, as an empty preset means no preset
            return None
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as e:
            raise gr.Error(f"{cls.refusal}; got {quoted(obj)}.") from e


class _MelodyFile(_NamedFile):
    refusal = "melody must be an audio file sent with gradio_client.handle_file('hum.wav'), or left out"


class MelodyParameter(gr.Audio):
    """The melody parameter: an uploaded audio file, with a clear message for anything else."""

    is_template = True

    data_model = _MelodyFile


TRACK_TO_EXTEND = "the track to extend, sent with gradio_client.handle_file('track.wav') (any /generate result works)"


class _TrackFile(_NamedFile):
    refusal = f"audio must be {TRACK_TO_EXTEND}"


class TrackParameter(gr.Audio):
    """The track /extend continues: an uploaded audio file, required, with a clear message for anything else."""

    is_template = True

    data_model = _TrackFile

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:  # left out, null or empty: Gradio calls preprocess with None
            raise gr.Error(f"audio is required: {TRACK_TO_EXTEND}.")
        return super().preprocess(payload)
