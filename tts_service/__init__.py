"""The gRPC text-to-speech service: Kokoro-82M voices through sherpa-onnx."""

__version__ = "0.1.0"
