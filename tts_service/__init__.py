"""The gRPC text-to-speech service: Kokoro-82M voices through sherpa-onnx."""

from importlib.metadata import version

# pyproject.toml holds the one version number; the installed package's metadata carries it.
__version__ = version("kokoro-tts-grpc")
