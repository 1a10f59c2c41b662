"""Standard input as StreamingSynthesize requests, sent as the writer flushes it (--live)."""

from __future__ import annotations

import asyncio
import codecs
import os
import threading
from collections.abc import AsyncIterator
from typing import IO

from tts_api.v1 import tts_pb2


class LiveInput:
    """Standard input as it arrives, in whatever pieces the writer flushes.

    A daemon thread does the blocking reads, so Ctrl-C never waits for the writer.
    """

    _READ_BYTES = 4096

    def __init__(self, stdin: IO[str]) -> None:
        self._fd = stdin.fileno()
        self.received = ""

    async def requests(self) -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            # UTF-8 characters may be split across reads; the decoder keeps the halves.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            try:
                while data := os.read(self._fd, self._READ_BYTES):
                    loop.call_soon_threadsafe(arrived.put_nowait, decoder.decode(data))
                loop.call_soon_threadsafe(arrived.put_nowait, decoder.decode(b"", final=True))
                loop.call_soon_threadsafe(arrived.put_nowait, None)
            except RuntimeError:
                return  # the call ended (e.g. refused) and its event loop closed: stop reading

        threading.Thread(target=read, name="tts-stdin", daemon=True).start()
        while (text := await arrived.get()) is not None:
            if text:
                self.received += text
                yield tts_pb2.StreamingSynthesizeRequest(text=text)
