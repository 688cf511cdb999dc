"""Reading request bodies by hand: JSON validated in one pass, CSV uploads, batch limits.

Bodies skip FastAPI's body machinery (validating raw bytes in one pass is several times
cheaper); validation errors still become FastAPI's 422 naming the field.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from vigil.data import schema
from vigil.data.transaction import DEFAULT_POLICY, EventTimePolicy, from_text
from vigil.serving.errors import BadUpload, PayloadTooLarge, ServiceError

ModelT = TypeVar("ModelT", bound=BaseModel)

JSON = "application/json"
CSV = "text/csv"
MULTIPART = "multipart/form-data"
UPLOAD_FIELD = "file"
GZIP_MAGIC = b"\x1f\x8b"


class UnsupportedMediaType(ServiceError):
    """The body's content type is not one this route reads."""

    status_code = 415


def media_type(request: Request) -> str:
    """The request's content type without parameters, lower-cased ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def validation_error(error: ValidationError) -> RequestValidationError:
    """A pydantic error as FastAPI's 422, each problem located under ``body``."""
    problems = error.errors(include_url=False)
    return RequestValidationError(
        [{**problem, "loc": ("body", *problem["loc"])} for problem in problems]
    )


def validate_rows(
    rows: Sequence[Any],
    adapter: TypeAdapter[list[ModelT]],
    max_rows: int,
    event_time: EventTimePolicy = DEFAULT_POLICY,
) -> list[ModelT]:
    """Check the batch length (413), validate every row (422) and unique transaction ids."""
    if len(rows) > max_rows:
        raise PayloadTooLarge(max_rows, "batch", "rows")
    try:
        items = adapter.validate_python(rows, context=event_time)
    except ValidationError as error:
        raise validation_error(error) from None
    if not items:
        raise BadUpload("the batch holds no transaction")
    ids = [getattr(item, schema.TRANSACTION_ID) for item in items]
    if len(set(ids)) != len(ids):
        raise BadUpload("transaction_id values must be unique within a batch")
    return items


def csv_rows(data: bytes) -> list[dict[str, object]]:
    """CSV with a header line as row dicts, names read by :func:`~vigil.data.schema.column_name`
    and the contract's columns as numbers and times (:func:`~vigil.data.transaction.from_text`)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadUpload("the CSV upload is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise BadUpload("the CSV upload is empty") from None
    except csv.Error as error:
        raise BadUpload(f"the CSV upload is malformed: {error}") from None
    columns = [schema.column_name(name) for name in header]
    repeated = schema.repeated_columns(columns)
    if repeated:
        raise BadUpload(f"the CSV upload names column(s) {repeated} more than once")
    try:
        return [
            {column: from_text(column, cell) for column, cell in zip(columns, row, strict=False)}
            for row in reader
            if row
        ]
    except csv.Error as error:
        raise BadUpload(f"the CSV upload is malformed: {error}") from None


def gunzipped(data: bytes, limit: int) -> bytes:
    """``data`` inflated when it is gzip (a ``.csv.gz`` upload), refused past ``limit`` bytes.

    The limit bounds the inflated size too: a small compressed body cannot expand without end.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise BadUpload(f"the gzip upload is corrupt: {error}") from None
    if len(inflated) > limit:
        raise PayloadTooLarge(limit, what="the inflated gzip upload")
    if not inflater.eof:
        raise BadUpload("the gzip upload is truncated")
    return inflated


async def uploaded_csv(request: Request) -> bytes:
    """The CSV bytes (plain or gzip) of a ``text/csv`` body or of a multipart ``file`` field."""
    limit = request.app.state.settings.serving.max_upload_bytes
    kind = media_type(request)
    if kind == CSV:
        return gunzipped(await request.body(), limit)
    if kind != MULTIPART:
        raise UnsupportedMediaType(f"send {CSV} or a {MULTIPART} upload with a '{UPLOAD_FIELD}'")
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise BadUpload(f"the multipart form has no file field '{UPLOAD_FIELD}'")
        return gunzipped(await upload.read(), limit)


async def read_batch(
    request: Request, adapter: TypeAdapter[list[ModelT]], max_rows: int, allow_json: bool
) -> list[ModelT]:
    """Transactions from a JSON array (when allowed) or a CSV upload, validated and limited."""
    if allow_json and media_type(request) == JSON:
        try:
            rows = orjson.loads(await request.body())
        except orjson.JSONDecodeError as error:
            raise BadUpload(f"the body is not valid JSON: {error}") from None
        if not isinstance(rows, list):
            raise BadUpload("the JSON body must be an array of transactions")
    else:
        rows = csv_rows(await uploaded_csv(request))
    event_time = EventTimePolicy.from_config(request.app.state.settings.data)
    return validate_rows(rows, adapter, max_rows, event_time)
