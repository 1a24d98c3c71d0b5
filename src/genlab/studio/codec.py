"""Images in and out of the studio: uploads decoded within limits, model outputs as PNG data URLs.

Uploads are decoded exactly as genlab's image folders are (:func:`genlab.data.folder.open_image`:
EXIF orientation, 16-bit grey kept, transparency composited onto white), from memory, never
from a path a request names.
"""

from __future__ import annotations

import base64
import io

from PIL import Image
from torch import Tensor

from genlab.data.folder import TooLarge, open_image
from genlab.images import fit_image, to_model, to_uint8

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096  # refused from the header, before decoding


class BadUpload(Exception):
    """An upload the studio refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_upload(data: bytes, shape: tuple[int, int, int], name: str = "the upload") -> tuple[Tensor, str | None]:
    """Uploaded file bytes -> float ``[1, *shape]`` in [-1, 1] and a note when it was resized."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadUpload(413, f"{name} is {len(data)} bytes, over the studio's limit of {MAX_UPLOAD_BYTES}")
    if not data:
        raise BadUpload(400, f"{name} is empty; choose an image file (PNG, JPEG, ...)")
    try:
        image = open_image(io.BytesIO(data), "L" if shape[0] == 1 else "RGB", MAX_UPLOAD_PIXELS)
    except TooLarge as err:
        raise BadUpload(413, f"{name}: {err}; upload an image of at most {MAX_UPLOAD_PIXELS} pixels") from None
    except Exception as err:  # PIL raises many types for bad bytes; each means "not an image we can read"
        raise BadUpload(
            400,
            f"{name} is not an image genlab can read ({type(err).__name__}); upload a PNG, JPEG, BMP, GIF or TIFF file",
        ) from None
    pixels, note = fit_image(image, shape, name)
    return to_model(pixels[None]), note


def png_data_urls(images: Tensor) -> list[str]:
    """Float images ``[N, C, H, W]`` in [-1, 1] -> one ``data:image/png;base64,...`` URL each."""
    return [png_data_url(pixels) for pixels in to_uint8(images)]


def png_data_url(pixels: Tensor) -> str:
    """One uint8 image ``[C, H, W]`` (e.g. a grid from ``images.make_grid``) -> a PNG data URL."""
    array = pixels.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over size: these are tiny
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
