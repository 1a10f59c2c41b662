"""Language, a pure layer: text becomes pieces and Kokoro's tokens, one front end per language."""
