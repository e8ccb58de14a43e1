"""Streaming ``multipart/form-data``: text fields kept (size-capped), one file part written
chunk by chunk into a sink as it arrives — never buffered whole, so the sink can refuse an
oversized upload the moment it passes its limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from core.errors import PayloadTooLarge, field_error
from mcp_server.rest.errors import UnsupportedMediaType

__all__ = ["FIELD_LIMIT", "FilePart", "Form", "Sink", "read_multipart"]

FIELD_LIMIT = 16 * 1024
"""Bytes of all text fields together."""


class Sink(Protocol):
    def write(self, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class FilePart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    file: FilePart | None = None


@dataclass
class _State:
    """The parser's callbacks, collecting one form."""

    file_field: str
    open_file: Callable[[FilePart], Sink]
    form: Form = field(default_factory=Form)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    name: str = ""
    text: bytearray = field(default_factory=bytearray)
    sink: Sink | None = None
    field_bytes: int = 0

    def on_part_begin(self) -> None:
        self.headers.clear()
        self.text.clear()
        self.sink = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header).lower()] = bytes(self.value)
        self.header.clear()
        self.value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self.name != self.file_field or self.form.file is not None:
            raise field_error(self.name or "(body)",
                              f"only one file, in the field '{self.file_field}'")
        content_type = self.headers.get(b"content-type")
        part = FilePart(self.name, options[b"filename"].decode("utf-8", "replace") or None,
                        content_type.decode("latin-1") if content_type else None)
        self.form.file = part
        self.sink = self.open_file(part)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.sink is not None:
            self.sink.write(data[start:end])
            return
        self.field_bytes += end - start
        if self.field_bytes > FIELD_LIMIT:
            raise PayloadTooLarge(f"form fields exceed {FIELD_LIMIT} bytes")
        self.text += data[start:end]

    def on_part_end(self) -> None:
        if self.sink is None:
            self.form.fields[self.name] = self.text.decode("utf-8", "replace")


async def read_multipart(request: Request, open_file: Callable[[FilePart], Sink], *,
                         file_field: str = "file") -> Form:
    """Parse the request's multipart body, streaming the ``file_field`` part into the sink
    ``open_file`` returns (415 unless the body is ``multipart/form-data``)."""
    mime, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            "the body must be multipart/form-data (with a boundary)",
            details=[{"path": "Content-Type", "problem": "not multipart/form-data"}])
    state = _State(file_field, open_file)
    names = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end",
             "on_headers_finished", "on_part_data", "on_part_end")
    parser = MultipartParser(boundary, {n: getattr(state, n) for n in names})  # type: ignore[arg-type]
    async for chunk in request.stream():
        parser.write(chunk)
    parser.finalize()
    return state.form
