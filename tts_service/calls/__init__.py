"""The call layer: one call's checks, audio, limits and ending, the same for every front."""
