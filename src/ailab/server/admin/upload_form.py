"""The body of a document upload, spooled to disk: multipart files (starlette spools each part over 1 MiB
to a temporary file; it is copied on in chunks) or JSON `{documents: [{name, text}]}`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import Request
from pydantic import BaseModel, Field

from ailab.knowledge import Incoming, spool
from ailab.server.admin.deps import ApiError

MAX_FILES = 1000


class TextDocument(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    text: str


class DocumentsBody(BaseModel):
    documents: list[TextDocument] = Field(min_length=1, max_length=MAX_FILES)


async def read_upload(request: Request, folder: Path) -> list[Incoming]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        return await _read_form(request, folder)
    try:
        body = DocumentsBody.model_validate_json(await request.body())
    except ValueError as exc:
        raise ApiError(400, f"documents: {str(exc)[:300]}", "invalid_value") from None
    return [
        await asyncio.to_thread(spool, folder, i, d.name, d.text.encode())
        for i, d in enumerate(body.documents)
    ]


async def _read_form(request: Request, folder: Path) -> list[Incoming]:
    async with request.form(max_files=MAX_FILES, max_part_size=1024 * 1024) as form:
        items: list[Incoming] = []
        for value in [*form.getlist("files"), *form.getlist("file")]:
            if isinstance(value, str):
                continue
            name = value.filename or "upload"
            items.append(await asyncio.to_thread(spool, folder, len(items), name, value.file))
    if not items:
        raise ApiError(400, "files: attach at least one file (form field 'files')", "invalid_value")
    return items
