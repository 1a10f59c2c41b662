"""Synthesis: the engines, their runtime, the pool's shape and the scheduler that shares them."""
