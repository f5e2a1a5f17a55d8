"""Byte-level and format-aware mutations of seed images (no third-party dependency).

:func:`mutate` applies one to a few of: bit flips, "interesting" integers written
over header fields (sizes, counts, offsets), truncation, splicing with another
seed, duplication/deletion/insertion of spans, PNG chunk duplication, deletion,
reordering and body corruption (with the CRCs fixed, so the decoder gets past
the CRC check), and JPEG segment/scan duplication.
"""

from __future__ import annotations

import random
import struct
import typing as t
import zlib

__all__ = ["MAX_INPUT", "mutate"]

#: Mutated inputs are cut to this size.
MAX_INPUT = 1 << 20

_INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF)
_INTERESTING_16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x100, 0x1000, 0x3FFF)
_INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 0x1000000, 7071)

Mutator = t.Callable[[bytes, random.Random, t.Sequence[bytes]], bytes]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _position(data: bytes | bytearray, rng: random.Random) -> int:
    """A position, biased towards the first bytes, where headers are."""
    if rng.random() < 0.5:
        return rng.randrange(min(len(data), 64))
    return rng.randrange(len(data))


def bit_flip(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        out[_position(out, rng)] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_byte(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    out[_position(out, rng)] = rng.randrange(256)
    return bytes(out)


def interesting(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    width = rng.choice((1, 2, 4))
    if len(out) < width:
        return data
    pos = min(_position(out, rng), len(out) - width)
    order = rng.choice("<>")
    if width == 1:
        out[pos] = rng.choice(_INTERESTING_8)
    elif width == 2:
        struct.pack_into(order + "H", out, pos, rng.choice(_INTERESTING_16))
    else:
        struct.pack_into(order + "I", out, pos, rng.choice(_INTERESTING_32))
    return bytes(out)


def arithmetic(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    if len(out) < 2:
        return data
    pos = min(_position(out, rng), len(out) - 2)
    order = rng.choice("<>")
    (value,) = struct.unpack_from(order + "H", out, pos)
    struct.pack_into(order + "H", out, pos, (value + rng.randint(-35, 35)) & 0xFFFF)
    return bytes(out)


def truncate(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    return data[: rng.randrange(len(data))]


def splice(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    other = (rng.choice(seeds) if seeds else b"") or data
    if not other:
        return data
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other)) :]


def _span(data: bytes, rng: random.Random) -> tuple[int, int]:
    start = rng.randrange(len(data))
    return start, min(len(data), start + rng.choice((1, 2, 4, 16, 64, 512, 4096)))


def duplicate(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    start, end = _span(data, rng)
    return data[:end] + data[start:end] * rng.choice((1, 1, 2, 8, 64)) + data[end:]


def delete(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    if not data:
        return data
    start, end = _span(data, rng)
    return data[:start] + data[end:]


def insert(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    pos = rng.randrange(len(data) + 1)
    blob = rng.randbytes(rng.choice((1, 4, 16, 256)))
    return data[:pos] + blob + data[pos:]


# PNG ----------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[list[bytes]] | None:
    if not data.startswith(PNG_SIGNATURE):
        return None
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if pos + 12 + length > len(data):
            break
        chunks.append([data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]])
        pos += 12 + length
    return chunks or None


def _png_join(chunks: t.Sequence[t.Sequence[bytes]]) -> bytes:
    out = [PNG_SIGNATURE]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def png_chunk_mutation(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    chunks = _png_chunks(data)
    if chunks is None:
        return bit_flip(data, rng, seeds)
    i = rng.randrange(len(chunks))
    action = rng.randrange(6)
    if action == 0:
        chunks.insert(i, list(chunks[i]))
    elif action == 1 and len(chunks) > 1:
        del chunks[i]
    elif action == 2:
        j = rng.randrange(len(chunks))
        chunks[i], chunks[j] = chunks[j], chunks[i]
    elif action == 3 and chunks[i][1]:
        chunks[i][1] = rng.choice((bit_flip, interesting, truncate, duplicate))(
            chunks[i][1], rng, seeds
        )
    elif action == 4:
        kind = rng.choice((b"tRNS", b"PLTE", b"iCCP", b"eXIf", b"acTL", b"fcTL", b"zTXt"))
        chunks.insert(max(1, i), [kind, rng.randbytes(rng.choice((0, 1, 3, 6, 26, 64)))])
    else:
        # Re-compress IDAT data with some of it duplicated or changed.
        idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
        try:
            raw = zlib.decompress(idat)
        except zlib.error:
            return _png_join(chunks)
        if raw:
            raw = rng.choice((bit_flip, duplicate, truncate, interesting))(raw, rng, seeds)
        first = next((n for n, (kind, _) in enumerate(chunks) if kind == b"IDAT"), None)
        chunks = [c for c in chunks if c[0] != b"IDAT"]
        if first is not None:
            chunks.insert(min(first, len(chunks)), [b"IDAT", zlib.compress(raw)])
    return _png_join(chunks)


def png_fix_crcs(data: bytes) -> bytes:
    chunks = _png_chunks(data)
    return data if chunks is None else _png_join(chunks)


# JPEG ---------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> list[tuple[int, int]] | None:
    """``(start, end)`` of each marker segment before the first scan's data."""
    if not data.startswith(b"\xff\xd8"):
        return None
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((pos, min(len(data), pos + 2 + length)))
        if data[pos + 1] == 0xDA:
            break
        pos += 2 + length
    return segments or None


def jpeg_segment_mutation(data: bytes, rng: random.Random, seeds: t.Sequence[bytes]) -> bytes:
    segments = _jpeg_segments(data)
    if segments is None:
        return bit_flip(data, rng, seeds)
    start, end = rng.choice(segments)
    action = rng.randrange(4)
    if action == 0:  # duplicate a segment
        return data[:end] + data[start:end] * rng.choice((1, 2, 16)) + data[end:]
    if action == 1:  # drop it
        return data[:start] + data[end:]
    if action == 2:  # corrupt its body
        body = rng.choice((bit_flip, interesting, arithmetic))(data[start + 4 : end], rng, seeds)
        return data[: start + 4] + body + data[end:]
    # repeat the entropy-coded tail (more scans)
    tail_start = segments[-1][0]
    tail = data[tail_start:-2] if data.endswith(b"\xff\xd9") else data[tail_start:]
    return data[:tail_start] + tail * rng.choice((2, 4, 16)) + b"\xff\xd9"


# Driver -------------------------------------------------------------------------------

MUTATORS: tuple[tuple[Mutator, int], ...] = (
    (bit_flip, 6),
    (random_byte, 2),
    (interesting, 6),
    (arithmetic, 2),
    (truncate, 2),
    (splice, 2),
    (duplicate, 3),
    (delete, 2),
    (insert, 1),
    (png_chunk_mutation, 4),
    (jpeg_segment_mutation, 4),
)
_FUNCS = [m for m, _ in MUTATORS]
_WEIGHTS = [w for _, w in MUTATORS]


def mutate(data: bytes, rng: random.Random, seeds: t.Sequence[bytes] = ()) -> bytes:
    """Return a mutated copy of ``data`` (one to eight stacked mutations)."""
    if not data:
        return rng.randbytes(rng.choice((1, 8, 64)))
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        if not data:
            break
        (mutator,) = rng.choices(_FUNCS, _WEIGHTS)
        data = mutator(data, rng, seeds)
    if data.startswith(PNG_SIGNATURE) and rng.random() < 0.8:
        data = png_fix_crcs(data)
    return data[:MAX_INPUT]
