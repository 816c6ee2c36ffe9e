"""One write to the connection per response: the HTTP protocol's writes of one loop step, sent together.

uvicorn's h11 protocol writes a response in two calls, its head and then its body. Over TLS each call
is a record of its own and a ``send`` of its own, and a ``send`` on a connection whose peer is waiting
for it costs more than the rest of answering a small review: the peer is woken once per ``send``.
``CoalescingTransport`` keeps what is written and hands it to the real transport in one call: when the
protocol says the response is complete (``flush``), and otherwise at the next step of the event loop
(``call_soon``: a streamed body, an interim ``100 Continue``), before anything else the loop does with
the connection. Closing it sends what is kept first, aborting it drops it, as the real transport does.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport(asyncio.Transport):
    """A transport that passes everything to ``inner`` and sends the writes of one loop step at once."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.inner = inner
        self.loop = loop
        self.pending: list[bytes] = []

    # Writing.
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Sends what is kept, as one write (a no-op when the transport has been aborted meanwhile)."""
        if not self.pending:
            return
        if self.inner.is_closing():  # aborted or closed under us: nothing can be sent any more
            self.pending = []
            return
        data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        self.pending = []
        self.inner.write(data)

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size() + sum(len(d) for d in self.pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self.inner.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self.inner.write_eof()

    # Ending.
    def close(self) -> None:
        self.flush()  # what the response wrote goes out before the connection is closed
        self.inner.close()

    def abort(self) -> None:
        self.pending = []
        self.inner.abort()

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    # Reading and the rest, as the real transport has them.
    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()
