"""Audio, a pure layer: encoding, pauses and word timing of the samples the engines make."""
