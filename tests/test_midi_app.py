"""MIDI through the real gradio_client: /transcribe, a .mid as the melody, a tidied hum, bad files refused by name."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from generation.midi.midi_file import midi_bytes
from generation.midi.notes import KICK, Note, NoteTrack, parse_note
from tests.audio_factory import hum, write_audio
from tests.midi_factory import RATE, mix, render_parts, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("midi")
    tune = tuple(Note(parse_note(n), 0.4 * i, 0.4 * i + 0.38) for i, n in enumerate(("C4", "E4", "G4", "C5", "G4")))
    (folder / "tune.mid").write_bytes(midi_bytes([NoteTrack("melody", tune)]))
    (folder / "beat.mid").write_bytes(midi_bytes([NoteTrack("beat", (Note(KICK, 0, 0.1),), drums=True)]))
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    sung = hum(("C4", "E4", "G4", "F#4", "E4", "C4"), note_seconds=0.5, rate=RATE)
    song = mix(render_parts(score(bars=2), folder))
    noise = np.random.default_rng(0).normal(0, 0.2, RATE * 2).astype(np.float32)
    return {
        "tune": folder / "tune.mid",
        "beat": folder / "beat.mid",
        "broken": folder / "broken.mid",
        "hum": write_audio(folder / "hum", sung, RATE, "wav_16"),
        "song": write_audio(folder / "song", song, RATE, "wav_16"),
        "noise": write_audio(folder / "noise", noise, RATE, "wav_16"),
    }


def test_a_hum_transcribed_gives_a_midi_file_a_piano_roll_and_its_notes(client, files):
    midi, picture, words = client.predict(recording=handle_file(str(files["hum"])), api_name="/transcribe")
    [path] = midi
    song = mido.MidiFile(path)
    names = [m.name for track in song.tracks for m in track if m.type == "track_name"]
    assert names == ["hum", "melody"]
    assert [m.note for m in song.tracks[1] if m.type == "note_on"][:3] == [60, 64, 67]
    assert picture.endswith((".png", ".webp", ".jpg", ".jpeg"))
    assert "melody (6 notes): C4 0.0" in words


def test_a_song_whose_stems_hold_none_of_its_parts_is_refused_by_name(client, files):
    # the server's tiny random Demucs keeps only low sound in every stem: no pitch, and no snare or hat to show a
    # kit (so the low thumps are not taken for kicks); a song's named parts at its tempo: test_transcription.py
    with pytest.raises(AppError, match="No notes heard in 'song.wav'"):
        client.predict(recording=handle_file(str(files["song"])), api_name="/transcribe")


def test_a_midi_melody_and_a_tidied_hum_are_followed_and_named(client, files):
    audio, _, recipe, summary, picture, *_ = client.predict(
        prompt="", melody=handle_file(str(files["tune"])), duration=1, seed=4, api_name="/generate"
    )
    assert sf.info(audio).frames == 32_000
    assert recipe["melody"]["file"] == "tune.mid" and recipe["melody"]["kind"] == "midi"
    assert [n[0] for n in recipe["melody"]["notes"]] == [60, 64, 67, 72, 67]
    assert picture is not None and "5 notes from the track 'melody'" in summary

    _, _, recipe, summary, *_ = client.predict(
        prompt="", melody=handle_file(str(files["hum"])), melody_cleanup=True, bpm=120, duration=1, seed=4,
        api_name="/generate",
    )  # fmt: skip
    assert recipe["melody"]["cleanup"] is True
    assert "moved to the scale of C major, timing quantised to 1/8 at 120 BPM" in summary


@pytest.mark.parametrize(
    ("name", "endpoint", "words"),
    [
        ("beat", "/generate", "holds only drums"),
        ("broken", "/generate", "is not a standard MIDI file"),
        ("noise", "/transcribe", "No notes heard"),
    ],
)
def test_bad_midi_and_pitchless_audio_are_refused_by_name_and_the_server_keeps_serving(client, files, name, endpoint,
                                                                                       words):  # fmt: skip
    sent = handle_file(str(files[name]))
    values = {"melody": sent, "prompt": "x", "duration": 1} if endpoint == "/generate" else {"recording": sent}
    with pytest.raises(AppError, match=words):
        client.predict(**values, api_name=endpoint)
    midi, _, _ = client.predict(recording=handle_file(str(files["hum"])), api_name="/transcribe")
    assert mido.MidiFile(midi[0]).tracks
