"""Procedurally drawn sample images (no downloads): landscapes, waves, shapes, cities.

Every function takes a size and a :class:`random.Random`, so the same seed
draws the same picture.
"""

from __future__ import annotations

import hashlib
import math
import random
import typing as t

from PIL import Image, ImageDraw, ImageFilter

__all__ = ["STYLES", "avatar", "city", "draw", "landscape", "shapes", "waves"]

RGB = tuple[int, int, int]


def _mix(a: RGB, b: RGB, f: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * f),
        round(a[1] + (b[1] - a[1]) * f),
        round(a[2] + (b[2] - a[2]) * f),
    )


def vertical_gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    """An RGB image fading from ``top`` to ``bottom``."""
    mask = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _ridge(
    rng: random.Random, width: int, base: float, amplitude: float, roughness: float
) -> list[tuple[float, float]]:
    """A mountain ridge line by midpoint displacement."""
    points = [base + rng.uniform(-amplitude, amplitude) for _ in range(2)]
    spread = amplitude
    while len(points) < 129:
        refined = []
        for left, right in zip(points[:-1], points[1:], strict=True):
            refined += [left, (left + right) / 2 + rng.uniform(-spread, spread)]
        points = [*refined, points[-1]]
        spread *= roughness
    step = width / (len(points) - 1)
    return [(i * step, y) for i, y in enumerate(points)]


_SKIES: list[tuple[RGB, RGB, RGB]] = [
    ((32, 64, 140), (250, 170, 110), (255, 236, 180)),  # dawn: top, horizon, sun
    ((70, 140, 220), (200, 228, 250), (255, 255, 235)),  # noon
    ((40, 20, 80), (240, 110, 80), (255, 210, 120)),  # sunset
]


def landscape(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Sky, sun, layered mountains fading into haze, and a lake reflecting them."""
    w, h = size
    top, horizon, sun = rng.choice(_SKIES)
    img = vertical_gradient(size, top, horizon)
    draw = ImageDraw.Draw(img)
    sun_x, sun_y, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.18, 0.4) * h, 0.06 * w
    # The sun's glow, blurred at 1/8 scale (fast) then enlarged.
    small = Image.new("L", (max(1, w // 8), max(1, h // 8)), 0)
    box = (sun_x - 3 * r, sun_y - 3 * r, sun_x + 3 * r, sun_y + 3 * r)
    ImageDraw.Draw(small).ellipse([v / 8 for v in box], 90)
    glow = small.filter(ImageFilter.GaussianBlur(r / 8)).resize(size, Image.Resampling.BILINEAR)
    img = Image.composite(Image.new("RGB", size, sun), img, glow)
    draw = ImageDraw.Draw(img)
    draw.ellipse((sun_x - r, sun_y - r, sun_x + r, sun_y + r), fill=sun)
    water = 0.72 * h
    far = _mix(horizon, (60, 80, 110), 0.45)
    near = (rng.randint(20, 45), rng.randint(50, 80), rng.randint(35, 60))
    layers = 4
    for layer in range(layers):
        f = layer / (layers - 1)
        base = water - (0.34 - 0.08 * layer) * h
        ridge = _ridge(rng, w, base, 0.14 * h * (1 - 0.6 * f), 0.58)
        draw.polygon([(0, water), *ridge, (w, water)], fill=_mix(far, near, f))
    # The lake mirrors what is above it, darker and bluer.
    above = img.crop((0, round(2 * water - h), w, round(water)))
    mirror = above.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    tint = Image.new("RGB", mirror.size, (20, 50, 90))
    img.paste(Image.blend(mirror, tint, 0.45), (0, round(water)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        y = rng.uniform(water + 4, h)
        x = rng.uniform(0, w)
        length = rng.uniform(0.02, 0.08) * w
        draw.line((x, y, x + length, y), fill=_mix(horizon, (255, 255, 255), 0.3), width=2)
    return img


_PALETTES: list[list[RGB]] = [
    [(242, 233, 216), (230, 57, 70), (29, 53, 87), (69, 123, 157), (241, 180, 52)],
    [(250, 243, 221), (38, 70, 83), (42, 157, 143), (233, 196, 106), (231, 111, 81)],
    [(237, 242, 244), (43, 45, 66), (141, 153, 174), (239, 35, 60), (255, 183, 3)],
]


def shapes(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A Bauhaus-like composition of circles, bars and triangles."""
    w, h = size
    palette = rng.choice(_PALETTES)
    img = Image.new("RGB", size, palette[0])
    draw = ImageDraw.Draw(img, "RGBA")
    unit = min(w, h)
    for _ in range(14):
        colour = (*rng.choice(palette[1:]), rng.choice((255, 255, 200)))
        kind = rng.choice(("circle", "bar", "triangle", "ring"))
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.08, 0.35) * unit
        if kind == "circle":
            draw.ellipse((x - s, y - s, x + s, y + s), fill=colour)
        elif kind == "ring":
            draw.ellipse((x - s, y - s, x + s, y + s), outline=colour, width=max(4, int(s / 6)))
        elif kind == "bar":
            angle = rng.choice((0, math.pi / 2, math.pi / 4))
            dx, dy = math.cos(angle) * s * 2, math.sin(angle) * s * 2
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=colour, width=max(6, int(s / 3)))
        else:
            draw.polygon([(x, y - s), (x + s, y + s * 0.8), (x - s, y + s * 0.8)], fill=colour)
    return img


def waves(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Layered translucent sine waves over a two-colour gradient."""
    w, h = size
    palette = rng.choice(_PALETTES)
    img = vertical_gradient(size, palette[2], palette[0])
    draw = ImageDraw.Draw(img, "RGBA")
    for band in range(7):
        colour = (*palette[1 + band % 4], 110)
        base = h * (0.3 + band * 0.1)
        amplitude = h * rng.uniform(0.03, 0.09)
        length = w / rng.uniform(0.7, 2.2)
        phase = rng.uniform(0, math.tau)
        points = [
            (x, base + amplitude * math.sin(x / length * math.tau + phase))
            for x in range(0, w + 16, 16)
        ]
        draw.polygon([(0, h), *points, (w, h)], fill=colour)
    return img


def city(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A night skyline: stars, a moon, and buildings with lit windows."""
    w, h = size
    img = vertical_gradient(size, (8, 10, 30), (50, 40, 90))
    draw = ImageDraw.Draw(img)
    for _ in range(w * h // 6000):
        x, y = rng.uniform(0, w), rng.uniform(0, 0.7 * h)
        v = rng.randint(150, 255)
        draw.point((x, y), fill=(v, v, v))
    mx, my, r = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.3) * h, 0.05 * min(w, h) + 20
    draw.ellipse((mx - r, my - r, mx + r, my + r), fill=(245, 240, 215))
    for depth, shade in ((0, (30, 30, 60)), (1, (15, 15, 35))):
        x = -rng.uniform(0, 40)
        while x < w:
            bw = rng.uniform(0.04, 0.1) * w
            top = h * rng.uniform(0.35, 0.7) + depth * 0.1 * h
            draw.rectangle((x, top, x + bw, h), fill=shade)
            if depth:
                size_px = max(4, int(bw / 10))
                for wy in range(int(top) + size_px, h - size_px, size_px * 3):
                    for wx in range(int(x) + size_px, int(x + bw) - size_px, size_px * 2):
                        if rng.random() < 0.35:
                            glow = rng.choice(((255, 210, 120), (255, 240, 200), (140, 200, 255)))
                            draw.rectangle((wx, wy, wx + size_px, wy + size_px), fill=glow)
            x += bw + rng.uniform(2, 12)
    return img


#: The drawing styles, by name.
STYLES: dict[str, t.Callable[[tuple[int, int], random.Random], Image.Image]] = {
    "landscape": landscape,
    "waves": waves,
    "shapes": shapes,
    "city": city,
}


def draw(style: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Draw a picture of ``style`` at ``size``; the same seed draws the same picture."""
    return STYLES[style](size, random.Random(seed))


def avatar(name: str, size: int = 512) -> Image.Image:
    """A symmetric 5x5 identicon for ``name``, like the default avatars of code hosts."""
    digest = hashlib.sha256(name.encode()).digest()
    colour = (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)
    img = Image.new("RGB", (size, size), (240, 240, 236))
    draw_ = ImageDraw.Draw(img)
    cell = size // 6
    margin = (size - 5 * cell) // 2
    for row in range(5):
        for col in range(3):
            if digest[3 + row * 3 + col] % 2:
                for c in {col, 4 - col}:
                    x, y = margin + c * cell, margin + row * cell
                    draw_.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
    return img
