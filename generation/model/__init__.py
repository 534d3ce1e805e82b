"""MusicGen in memory: loading, the model thread and batcher, sampling, cache, lean layers, decoding, chroma."""
