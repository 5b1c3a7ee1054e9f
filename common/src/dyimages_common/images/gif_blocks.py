"""The GIF walk: Pillow's reading of a GIF up to its first frame, step by step, counted and capped.

Pillow reads the blocks before the first image descriptor in Python, one data sub-block at a time,
and reads on past any byte that is neither a block nor the trailer (one step each); it keeps every
comment sub-block in a list and joins them. This walk follows the same reading, so every step
Pillow would take is counted: at most :data:`MAX_GIF_BLOCKS_BEFORE_IMAGE` steps and
:data:`MAX_GIF_COMMENT_BYTES` bytes of comments. Only the first frame is decoded and used; later
frames are never read, so their number costs nothing.
"""

from __future__ import annotations

from dyimages_common.images.walk_limits import DecodeWork, TooComplex

MAX_GIF_BLOCKS_BEFORE_IMAGE = 4096
MAX_GIF_COMMENT_BYTES = 64 * 1024
_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_COMMENT, _APPLICATION = 0xFE, 0xFF
_OBJECT_BYTES = 64  # a kept sub-block: its bytes object and list slot


class _Walk:
    def __init__(self, data: bytes, start: int) -> None:
        self.data = data
        self.position = start
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_GIF_BLOCKS_BEFORE_IMAGE:
            raise TooComplex(f"more than {MAX_GIF_BLOCKS_BEFORE_IMAGE} GIF blocks or stray bytes before the image")

    def byte(self) -> int | None:
        if self.position >= len(self.data):
            return None
        self.position += 1
        return self.data[self.position - 1]

    def sub_block(self) -> bytes | None:
        """Pillow's ``GifImageFile.data``: one data sub-block, None at the empty one (or the end)."""
        self.step()
        size = self.byte()
        if not size:
            return None
        self.position += size
        return self.data[self.position - size : self.position]


def walk_gif(data: bytes) -> DecodeWork:
    """Follow Pillow's ``GifImageFile._seek(0)`` over ``data``; raise TooComplex over a limit."""
    flags = data[10] if len(data) > 10 else 0
    walk = _Walk(data, 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0))  # header, screen, colours
    comment = 0
    while (byte := walk.byte()) not in (None, _TRAILER, _IMAGE):
        walk.step()
        if byte != _EXTENSION:
            continue  # Pillow skips it and reads on
        label = walk.byte()
        if label is None:
            break
        block = walk.sub_block()
        if label == _COMMENT:
            while block:
                comment += len(block)
                if comment > MAX_GIF_COMMENT_BYTES:
                    raise TooComplex(f"more than {MAX_GIF_COMMENT_BYTES} bytes of GIF comments")
                block = walk.sub_block()
            continue
        if label == _APPLICATION and block is not None and block.startswith(b"NETSCAPE2.0"):
            walk.sub_block()
        while walk.sub_block():
            pass
    return DecodeWork(held_bytes=2 * comment + _OBJECT_BYTES * walk.steps)
