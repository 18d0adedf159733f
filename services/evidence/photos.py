"""Reading photos with Pillow: the perceptual hash, EXIF time and GPS, and a thumbnail.

No I/O: the caller hands in a file-like object and stores the thumbnail it gets back.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from services.evidence.domain import Photo, RefusedEvidence
from shared.events import CITY_TZ

THUMBNAIL = (320, 320)
# Pillow reads these; HEIC needs a plug-in the service does not carry, so a HEIC photo is
# kept and counted without a thumbnail or perceptual hash.
READABLE = frozenset({"image/jpeg", "image/png", "image/webp"})

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 306, 36867, 36881


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey thumbnail brighter than its right
    neighbour? Survives resizing and recompression, which only nudge a few comparisons."""
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            left, right = pixels[row * 9 + col], pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left > right)
    return bits


def analyse(file: IO[bytes]) -> tuple[Photo, bytes]:
    """The photo's hash, EXIF facts and a JPEG thumbnail; RefusedEvidence if it is not a
    picture Pillow can decode (the magic bytes lied, or the file is cut short)."""
    try:
        with Image.open(file) as image:
            exif = image.getexif()
            width, height = image.size
            # A JPEG can be decoded at 1/2..1/8 scale straight away: a 50 MB photo then
            # needs a fraction of the memory.
            image.draft("RGB", (THUMBNAIL[0] * 2, THUMBNAIL[1] * 2))
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise RefusedEvidence(f"the picture cannot be decoded: {error}", "data.object_key") from error
    photo = Photo(
        dhash=dhash(rgb),
        taken_at=taken_at(exif),
        gps=gps(exif),
        width=width,
        height=height,
    )
    rgb.thumbnail(THUMBNAIL)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=80)
    return photo, out.getvalue()


def analyse_bytes(data: bytes) -> tuple[Photo, bytes]:
    """``analyse`` for a worker process (``ProcessPoolExecutor``): bytes in, bytes out."""
    return analyse(io.BytesIO(data))


def taken_at(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal (with its offset when given; cameras without one are taken to
    be on city time), else the file's DateTime."""
    details = exif.get_ifd(EXIF_IFD)
    raw = details.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = details.get(OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str):
        try:
            return datetime.fromisoformat(moment.isoformat() + offset.strip("\x00 "))
        except ValueError:
            pass
    return moment.replace(tzinfo=CITY_TZ)


def gps(exif: Image.Exif) -> tuple[float, float] | None:
    info = exif.get_ifd(GPS_IFD)
    try:
        lat = _degrees(info[2]) * (-1 if info.get(1) == "S" else 1)
        lon = _degrees(info[4]) * (-1 if info.get(3) == "W" else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return round(lat, 7), round(lon, 7)


def _degrees(dms: Any) -> float:
    d, m, s = (float(x) for x in dms)
    return d + m / 60 + s / 3600
