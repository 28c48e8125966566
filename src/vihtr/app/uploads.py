"""Uploaded files, checked from their headers before anything is decoded: the form's fields, the formats we
accept, the pixel limits, and a display name safe to log."""

from __future__ import annotations

import io

from flask import request
from PIL import Image
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

UPLOAD_FIELDS = ("images", "image")
# formats a browser or a scanner produces; others (EPS, PDF...) would hand the bytes to more decoders
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
MAX_NAME_CHARS = 200


def check_upload(data: bytes, max_pixels: int) -> int:
    """An upload's header, before anything is decoded: a format we accept and a pixel count under the
    limit. Returns the pixel count; raises `UploadError` (message, HTTP status) otherwise."""
    if not data:
        raise UploadError("empty file", 400)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise UploadError(f"image is over the limit of {max_pixels:,} pixels", 413) from None
    except Exception:
        raise UploadError(f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})", 400) from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise UploadError(
            f"image of {image.width}x{image.height} pixels is over the limit of {max_pixels:,}", 413
        )
    return pixels


class UploadError(ValueError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def upload_name(filename: str | None, index: int) -> str:
    """A display name: control characters out (a CR/LF must not reach a log line or a header), length capped."""
    name = "".join(c for c in (filename or "") if c.isprintable()).strip()
    return (name or f"image-{index + 1}")[:MAX_NAME_CHARS]


def uploaded_files(max_files: int) -> list:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send multipart/form-data with the images under the field 'images' (got {request.mimetype or 'no content type'})"
        )
    files = [f for field in UPLOAD_FIELDS for f in request.files.getlist(field)]
    if not files and any(field in request.form for field in UPLOAD_FIELDS):
        raise BadRequest(
            "the field 'images' came as text, not as a file: its part header has no valid filename "
            "(a file name with a line break breaks the header); send each image as a file part"
        )
    if not files:
        raise BadRequest("no files: send one or more images under the field 'images'")
    if len(files) > max_files:
        raise RequestEntityTooLarge(f"{len(files)} files sent, at most {max_files} per request")
    return files


def checked_uploads(files, limits: dict) -> tuple[list[str], list[str], list[bytes], list[int], list[int]]:
    """Each file's display name and error so far ("" when its header passed), the readable images' bytes,
    their positions, and the HTTP status of each refused file. `limits`: `max_pixels` per image and
    `max_request_pixels` for the whole request."""
    names = [upload_name(f.filename, i) for i, f in enumerate(files)]
    errors = [""] * len(files)
    images, readable, statuses = [], [], []
    budget = limits["max_request_pixels"]
    for i, f in enumerate(files):
        try:
            data = f.read()
            pixels = check_upload(data, limits["max_pixels"])
            if pixels > budget:
                raise UploadError(
                    f"over this request's pixel budget ({limits['max_request_pixels']:,} pixels "
                    "in all): send it in another request",
                    413,
                )
            budget -= pixels
            images.append(data)
            readable.append(i)
        except UploadError as e:
            errors[i] = f"{names[i]}: {e}"
            statuses.append(e.status)
    return names, errors, images, readable, statuses
