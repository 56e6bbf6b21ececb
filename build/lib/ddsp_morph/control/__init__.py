"""Performance controls from MIDI: f0, loudness and timbre position per frame."""
