"""The tts-grpc-client command and a small asyncio client for the TextToSpeech service."""
