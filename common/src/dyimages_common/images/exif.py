"""The photo's own facts from its EXIF block: when it was taken, by which camera, which way up.

EXIF comes from the outside like the rest of a download, and cameras, phones and editors write it
badly often enough (a cleared clock "0000:00:00 00:00:00", padding with NULs, a tag of the wrong
type, a block cut short). So every fact is read on its own and a fact that does not parse is None:
:func:`read_exif` never raises, and a photo with broken EXIF is stored and indexed like one without.

Rules (docs and README say the same):

* ``taken_at``: ``DateTimeOriginal`` (tag 0x9003 in the Exif IFD), "YYYY:MM:DD HH:MM:SS", with
  ``OffsetTimeOriginal`` (0x9011, "+HH:MM") when present and valid. Without an offset the camera's
  clock time is read as UTC, so the calendar date a person searches for is the one the camera showed.
  A year outside 1800..2999, an impossible date or a malformed string gives None. Seconds precision.
* ``camera``: ``Make`` (0x010F) and ``Model`` (0x0110) joined by a space, each trimmed of spaces and
  NULs, the make left out when the model already starts with its first word ("Canon" + "Canon EOS R5"
  is "Canon EOS R5"); a part that is not printable ASCII or is over 128 characters is dropped; the
  whole is cut to 128 characters.
* ``orientation``: ``Orientation`` (0x0112), an integer 1..8, else None.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import Image

DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
EXIF_IFD = 0x8769
MAKE = 0x010F
MODEL = 0x0110
ORIENTATION = 0x0112

MAX_CAMERA_CHARS = 128
YEARS = range(1800, 3000)

_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


@dataclass(frozen=True)
class ExifFacts:
    """What the payload keeps from EXIF; None where the photo does not say (or says nonsense)."""

    taken_at: datetime | None = None  # aware
    camera: str | None = None
    orientation: int | None = None


NO_EXIF = ExifFacts()


def read_exif(source: Image.Image | bytes) -> ExifFacts:
    """The EXIF facts of an opened image (call it after the image is loaded: a PNG's eXIf chunk may
    follow its pixel data) or of a raw EXIF block (the bytes of ``image.info["exif"]``).

    Never raises: Pillow's TIFF reader fails on malformed blocks with many exception types (struct,
    value, key, index, type, OS and syntax errors), any of which means "no EXIF" here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" and friends: the result says it
            if isinstance(source, bytes):
                exif = Image.Exif()
                exif.load(source)
            else:
                exif = source.getexif()
            main = dict(exif.items())
            details = dict(exif.get_ifd(EXIF_IFD).items())
    except Exception:  # see the docstring: untrusted input, any parse failure means "no EXIF"
        return NO_EXIF
    return ExifFacts(
        taken_at=taken_at(details.get(DATE_TIME_ORIGINAL), details.get(OFFSET_TIME_ORIGINAL)),
        camera=camera(main.get(MAKE), main.get(MODEL)),
        orientation=orientation(main.get(ORIENTATION)),
    )


def _text(value: object) -> str | None:
    """An EXIF ASCII value as clean text: trimmed of spaces and NULs, runs of spaces made one; None for
    another type, an over-long value, or characters that are not printable ASCII."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > MAX_CAMERA_CHARS:
        return None
    text = re.sub(r" {2,}", " ", value.strip(" \x00"))
    if not text or not (text.isascii() and text.isprintable()):  # EXIF ASCII: no control bytes, no Latin-1 junk
        return None
    return text


def taken_at(date_time: object, offset: object = None) -> datetime | None:
    """``DateTimeOriginal`` with ``OffsetTimeOriginal`` as an aware datetime (UTC when no valid offset)."""
    text = _text(date_time)
    if text is None or not (match := _DATE.fullmatch(text)):
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if year not in YEARS:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_offset(offset))
    except ValueError:  # month 13, February 30, hour 25, …
        return None


def _offset(value: object) -> timezone:
    text = _text(value)
    match = _OFFSET.fullmatch(text) if text else None
    if match is None:
        return UTC
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:  # no time zone is further than +14:00
        return UTC
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def camera(make: object, model: object) -> str | None:
    """ "Make Model", the make left out when the model repeats it; None when neither is usable."""
    make_text, model_text = _text(make), _text(model)
    if make_text and model_text and model_text.lower().startswith(make_text.split(" ")[0].lower()):
        make_text = None
    name = " ".join(part for part in (make_text, model_text) if part)
    return name[:MAX_CAMERA_CHARS].rstrip() or None


def orientation(value: object) -> int | None:
    """EXIF Orientation 1..8 (1 upright; 6 and 8 rotated a quarter turn), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        return None
    return value


def read_orientation(image: Image.Image) -> int | None:
    """The Orientation of an opened image's EXIF (1..8), or None; never raises (see :func:`read_exif`).

    Reads the main directory only, which Pillow already parsed when it opened a JPEG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return orientation(image.getexif().get(ORIENTATION))
    except Exception:  # untrusted input: any parse failure means "no orientation"
        return None
