"""What the tests and the benchmarks share: a speech recognizer and a real server process."""
