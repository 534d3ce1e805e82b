"""Notes in and out: transcribe audio to notes, write and read standard MIDI files, notes as the melody's chroma.

- ``notes``: ``Note``, ``NoteTrack`` and ``Chord`` values, note names, a polyphonic track's top voice;
- ``transcribe``: a hum, a bass or lead line, chords per beat and drums from audio (librosa, no learned weights);
- ``midi_file``: named tracks and a tempo map as MIDI bytes; a melody read back from an upload, refusing bad files;
- ``chroma``: notes as MusicGen-Melody's one-hot chroma at the model's frame rate;
- ``tidy``: a hum's notes snapped to its key's scale and a 1/8-note grid.
"""
