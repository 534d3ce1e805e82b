"""Audio in and out: decoding uploads, loudness, export, stems and pictures; arrays in, arrays or files out."""
