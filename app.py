"""Moodtape's Gradio app: layout and wiring around ``generation.Studio``; no model code here."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from api_components import FormatsParameter, MelodyParameter, TextParameter
from generation import __version__
from generation.errors import MoodtapeError
from generation.settings import MAX_GUIDANCE, MAX_TEMPERATURE, MAX_TOP_K, MIN_DURATION
from generation.studio import Studio, TrackRequest
from runner import TrackRunner

log = logging.getLogger("moodtape.app")

DEFAULTS = TrackRequest(duration=10.0, seed=-1, temperature=1.0, top_k=250, top_p=0.0, guidance_scale=3.0)
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLES = [  # mood, preset, hum (made by scripts/make_example_hums.py)
    ["rainy night, mellow piano, slow", "none", None],
    ["sunrise over the sea, hopeful", "cinematic-orchestral", None],
    ["late night drive through neon city", "synthwave", None],
    ["coffee shop on a sunday morning", "jazz-trio", None],
    ["", "jazz-trio", str(EXAMPLES_DIR / "hum-rising-arpeggio.wav")],
    ["dreamy, slow", "lofi-hip-hop", str(EXAMPLES_DIR / "hum-lullaby.ogg")],
    ["", "epic-metal", str(EXAMPLES_DIR / "hum-minor-riff.flac")],
]
EXAMPLE_LABELS = [
    "Rainy night, mellow piano",
    "Hopeful sunrise, orchestral",
    "Neon night drive, synthwave",
    "Sunday coffee shop, jazz trio",
    "Hum: rising arpeggio as a jazz trio",
    "Hum: lullaby as lo-fi hip-hop",
    "Hum: minor riff as epic metal",
]
MAX_HISTORY = 12  # results kept per browser tab
INTRO = """# Moodtape
Describe a mood, pick a style, press **Generate**: a track to play now and a lossless WAV to download.
Runs [MusicGen](https://huggingface.co/facebook/musicgen-small) (weights CC-BY-NC-4.0); every result is AI-generated.
"""
MELODY_HELP = (
    "With a melody, MusicGen-Melody follows its tune (the first 30 s are used); a hum alone is enough. "
    "**Style transfer**: upload a song and pick a style (or type one) to hear its melody in that style."
)
API_PARAMETERS = (
    "prompt",
    "preset",
    "melody",
    "duration",
    "seed",
    "temperature",
    "top_k",
    "top_p",
    "guidance",
    "stems",
    "formats",
    "sample_rate",
    "loudness",
)
LOUDNESS_CHOICES = [
    ("-14 LUFS (streaming)", -14.0),
    ("-16 LUFS (podcasts, Apple)", -16.0),
    ("-23 LUFS (broadcast)", -23.0),
    ("Off (as generated)", 0.0),
]
RATE_CHOICES = [("32 kHz (the model's own)", 0), ("44.1 kHz", 44_100), ("48 kHz", 48_000)]


def request_from(*values: Any) -> TrackRequest:
    """The one place widget and API values become a request (in ``API_PARAMETERS`` order)."""
    named = dict(zip(API_PARAMETERS, values, strict=True))
    named["guidance_scale"] = named.pop("guidance")
    return TrackRequest(**named)


def api_endpoint(runner: TrackRunner, name: str, doc: str, stream_to: str | None = None) -> Callable[..., Iterator]:
    """An API function with the public parameter names (Gradio reads them from the signature)."""

    def endpoint(
        prompt: str | None,
        preset: str | None = None,
        melody: str | None = None,
        duration: float | None = None,
        seed: float | str | None = None,
        temperature: float | None = None,
        top_k: float | None = None,
        top_p: float | None = None,
        guidance: float | None = None,
        stems: bool | None = None,
        formats: str | None = None,
        sample_rate: float | None = None,
        loudness: float | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[Any]:
        values = (prompt, preset, melody, duration, seed, temperature, top_k, top_p, guidance)
        request = request_from(*values, stems, formats, sample_rate, loudness)
        yield from runner.run(request, progress, stream_to=stream_to)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc
    return endpoint


def build_app(studio: Studio | None = None) -> gr.Blocks:
    """Build the Blocks: the page for people and the ``/generate``, ``/generate_stream`` and ``/presets`` API."""
    studio = studio or Studio()
    runner = TrackRunner(studio)
    library = studio.presets

    generate = api_endpoint(
        runner,
        "generate",
        "Make a track: returns the audio, downloads, recipe, summary, melody picture, picture, stems picture.",
    )
    generate_stream = api_endpoint(
        runner,
        "generate_stream",
        "Like /generate, but first yields the audio in pieces (small WAV files) while it is made.",
        stream_to="files",
    )

    def generate_in_page(*values: Any, progress: gr.Progress = gr.Progress()) -> Iterator[Any]:  # noqa: B008
        *inputs, history = values
        for out in runner.run(request_from(*inputs), progress, stream_to="player"):
            if not isinstance(out[1], str):  # a streamed piece or a keep-alive, not the finished track
                yield (*out, gr.skip(), gr.skip())
                continue
            history = [out[1:], *history][:MAX_HISTORY]
            yield (out[0], *shown(out[1:]), history, gr.update(choices=history_choices(history), value=0))

    def show_from_history(index: int | None, history: list) -> tuple[Any, ...]:
        if index is None or not 0 <= index < len(history):
            return (gr.skip(),) * 7
        return shown(history[index])

    def presets() -> list[dict]:
        """List the style presets: id, name, description, family, tags and settings."""
        return library.describe()

    def fill_from_preset(preset_id: str | None) -> tuple[Any, ...]:
        try:
            preset = library.find(preset_id)
        except MoodtapeError as e:
            raise gr.Error(str(e)) from e
        if preset is None:
            return ("", *(gr.skip(),) * 5)
        merged = {**DEFAULTS.__dict__, **preset.settings_dict()}
        names = ("duration", "temperature", "top_k", "top_p", "guidance_scale")
        return (f"*{preset.description}*", *(merged[name] for name in names))

    def model_status() -> str:
        engine = studio.engine
        state = "ready" if engine.loaded else "loading in the background (your first track waits for it)"
        fast = " · fast CPU mode" if engine.mode == "fast" else ""
        return f"Model {Path(engine.model_id).name} {state}{fast} · Moodtape {__version__}"

    with gr.Blocks(title="Moodtape: text to music") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(
                    label="Mood",
                    lines=1,  # with one line, Enter submits and Shift+Enter adds a line; the box grows to max_lines
                    max_lines=6,
                    elem_id="prompt",
                    placeholder="rainy night, mellow piano, slow (Enter to generate, Shift+Enter for a new line)",
                )
                preset = gr.Dropdown(
                    choices=library.choices(include_none=True), value="none", label="Style preset", elem_id="preset"
                )
                preset_info = gr.Markdown(elem_id="preset-info")
                melody = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Hum a melody, or upload a song to restyle (optional)",
                    elem_id="melody",
                )
                gr.Markdown(MELODY_HELP)
                duration = gr.Slider(
                    MIN_DURATION,
                    studio.max_duration,
                    value=DEFAULTS.duration,
                    step=1,
                    label="Duration (s)",
                    elem_id="duration",
                )
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 or empty = random)", elem_id="seed")
                with gr.Accordion("Advanced", open=False):
                    temperature = gr.Slider(
                        0.05, MAX_TEMPERATURE, value=DEFAULTS.temperature, step=0.05, label="Temperature"
                    )
                    top_k = gr.Slider(0, MAX_TOP_K, value=DEFAULTS.top_k, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.0, 1.0, value=DEFAULTS.top_p, step=0.01, label="Top-p (0 = off)")
                    guidance = gr.Slider(
                        1.0, MAX_GUIDANCE, value=DEFAULTS.guidance_scale, step=0.5, label="Classifier-free guidance"
                    )
                with gr.Accordion("Export: stems, formats, loudness", open=False):
                    stems = gr.Checkbox(
                        value=False,
                        label="Split into stems: drums, bass, other, vocals (takes longer)",
                        elem_id="stems",
                    )
                    formats = gr.CheckboxGroup(
                        ["wav", "flac", "mp3"],
                        value=["wav"],
                        label="Formats (24-bit WAV is always included)",
                        elem_id="formats",
                    )
                    sample_rate = gr.Dropdown(RATE_CHOICES, value=0, label="Sample rate", elem_id="sample-rate")
                    loudness = gr.Dropdown(LOUDNESS_CHOICES, value=-14.0, label="Loudness", elem_id="loudness")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            with gr.Column(scale=1):
                stream_player = gr.Audio(
                    label="Preview: plays while the track is made",
                    streaming=True,
                    autoplay=True,
                    interactive=False,
                    elem_id="stream-player",
                )
                player = gr.Audio(
                    label="Your track (lossless)",
                    type="filepath",
                    interactive=False,
                    buttons=["download"],
                    elem_id="player",
                )
                downloads = gr.File(
                    label="Downloads: lossless WAV (24-bit) and recipe",
                    file_count="multiple",
                    interactive=False,
                    elem_id="downloads",
                )
                summary = gr.Markdown(elem_id="summary")
                melody_picture = gr.Image(
                    label="What the model hears: the melody's pitch classes over time",
                    type="numpy",
                    interactive=False,
                    visible=False,
                    elem_id="melody-picture",
                )
                picture = gr.Image(label="Waveform and spectrogram", type="numpy", interactive=False, elem_id="picture")
                stems_picture = gr.Image(
                    label="Stems", type="numpy", interactive=False, visible=False, elem_id="stems-picture"
                )
                with gr.Row():
                    use_as_melody = gr.Button("Use this track as the melody", size="sm", elem_id="use-as-melody")
                history_pick = gr.Dropdown(
                    choices=[],
                    value=None,
                    type="index",
                    label="Results made in this tab (pick one to compare)",
                    elem_id="history",
                )
                history = gr.State([])
                with gr.Accordion("Recipe", open=False):
                    recipe = gr.JSON(label="Recipe", elem_id="recipe")
                status = gr.Markdown(elem_id="model-status")
        gr.Examples(examples=EXAMPLES, inputs=[prompt, preset, melody], label="Try one", example_labels=EXAMPLE_LABELS)

        # Hidden twins of the inputs for API clients: a value left out means "use the preset's or the default".
        with gr.Column(visible=False):
            api_inputs = [
                TextParameter(value=None, label="prompt"),
                TextParameter(value=None, label="preset"),
                MelodyParameter(value=None, type="filepath", label="melody"),
                *[gr.Number(value=None, label=name) for name in API_PARAMETERS[3:9]],
                gr.Checkbox(value=None, label="stems"),
                FormatsParameter(value=None, label="formats"),
                gr.Number(value=None, label="sample_rate"),
                gr.Number(value=None, label="loudness"),
            ]
            api_trigger = gr.Button("generate (API)")
            api_stream_trigger = gr.Button("generate_stream (API)")
            stream_piece = gr.File(label="audio piece")

        ui_inputs = [
            prompt,
            preset,
            melody,
            duration,
            seed,
            temperature,
            top_k,
            top_p,
            guidance,
            stems,
            formats,
            sample_rate,
            loudness,
        ]
        results = [player, downloads, recipe, summary, melody_picture, picture, stems_picture]
        # One model serves batches of up to max_batch concurrent requests (see generation/engine.py).
        run_settings = {"concurrency_id": "musicgen", "concurrency_limit": studio.engine.max_batch}
        # Progress and errors show on the preview player only, not as a badge on every result panel.
        ui_event = {"api_visibility": "private", "show_progress_on": [stream_player], **run_settings}
        page_outputs = [stream_player, *results, history, history_pick]
        click = generate_btn.click(
            generate_in_page, [*ui_inputs, history], page_outputs, api_name="ui_generate_click", **ui_event
        )
        submit = prompt.submit(
            generate_in_page, [*ui_inputs, history], page_outputs, api_name="ui_generate_submit", **ui_event
        )
        history_pick.input(show_from_history, [history_pick, history], results, api_visibility="private")
        use_as_melody.click(use_track_as_melody, player, melody, api_visibility="private")
        api_event = api_trigger.click(generate, api_inputs, results, api_name="generate", **run_settings)
        api_stream_event = api_stream_trigger.click(
            generate_stream, api_inputs, [stream_piece, *results], api_name="generate_stream", **run_settings
        )
        stop_btn.click(None, cancels=[click, submit, api_event, api_stream_event])
        preset.change(
            fill_from_preset,
            preset,
            [preset_info, duration, temperature, top_k, top_p, guidance],
            api_visibility="private",
        )
        gr.api(presets, api_name="presets")
        demo.load(model_status, outputs=status, api_visibility="private")
        status_timer = gr.Timer(5)  # refreshes the model status until the model is ready, then stops
        status_timer.tick(
            lambda: (model_status(), gr.Timer(active=not studio.engine.loaded)),
            outputs=[status, status_timer],
            api_visibility="private",
        )
    return demo


def use_track_as_melody(path: str | None) -> Any:
    """The finished track becomes the melody of the next one."""
    if not path:
        gr.Warning("Make a track first: then it can be the melody of the next one.")
        return gr.skip()
    return path


def shown(results: tuple) -> tuple[Any, ...]:
    """Results for the page: the picture panels that have nothing to show are hidden."""
    *rest, melody_picture, picture, stems_picture = results
    pictures = [gr.update(value=p, visible=p is not None) for p in (melody_picture, picture, stems_picture)]
    return (*rest, *pictures)


def history_choices(history: list) -> list[tuple[str, int]]:
    """Dropdown labels for the results of this tab, newest first: title, seed and length."""
    labels = []
    for index, (_, _, recipe, *_rest) in enumerate(history):
        title = recipe.get("mood") or recipe["settings"]["prompt"][:40] or (recipe.get("melody") or {}).get("file", "")
        preset = f" · {recipe['preset']}" if recipe.get("preset") else ""
        labels.append(
            (
                f"{title or 'untitled'}{preset} · seed {recipe['settings']['seed']} · {recipe['audio_seconds']:g} s",
                index,
            )
        )
    return labels


def main() -> None:
    """Start the app: the page is up at once, the model loads in the background."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    studio = Studio()
    for problem in studio.presets.problems:
        log.warning("Skipped preset: %s", problem)

    def preload() -> None:
        studio.warm_up()  # so the first track does not pay for the finishing steps' imports
        try:
            studio.engine.load()
        except MoodtapeError as e:
            log.error("%s", e)  # requests will show the same message until the model can be loaded

    threading.Thread(target=preload, name="moodtape-preload", daemon=True).start()
    studio.store.start()  # removes old results in the background, never ones younger than the keep time
    demo = build_app(studio)
    demo.queue(max_size=int(os.environ.get("MOODTAPE_QUEUE_SIZE", "32")))
    demo.launch(
        max_file_size=os.environ.get("MOODTAPE_MAX_FILE_SIZE", "50mb"),
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        allowed_paths=[str(studio.output_dir), str(EXAMPLES_DIR)],
        theme=gr.themes.Soft(),
        footer_links=["api"],
        show_error=True,  # Gradio's own input checks (say, a melody that is not an uploaded file) reach the client
    )


if __name__ == "__main__":
    main()
