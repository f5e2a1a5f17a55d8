"""Draw a few photos, generate their cache files, and show where they are.

python -m example_app.demo [--media DIR]
"""

from __future__ import annotations

import argparse
import os
import time

from PIL import Image, ImageDraw

from flask_imagekit.cachefiles import LazyGeneratedImageFile

from . import SPECS, create_app


def draw_photo(index: int, size: tuple[int, int] = (3000, 2000)) -> Image.Image:
    """A procedurally drawn landscape: sky gradient, sun, hills."""
    w, h = size
    sky = Image.linear_gradient("L").resize((w, h))
    img = Image.merge("RGB", (sky.point(lambda v: v // 3), sky.point(lambda v: v // 2 + 60), sky))
    draw = ImageDraw.Draw(img)
    sun_x = w * (index + 1) // 5
    draw.ellipse((sun_x - 150, 200, sun_x + 150, 500), fill=(255, 214, 90))
    for layer in range(3):
        top = h // 2 + layer * h // 8
        color = (40 + 30 * layer, 110 - 20 * layer, 50)
        points = [
            (x, top + ((x * (index + 3) + layer * 700) % 400) - 200)
            for x in range(0, w + 1, w // 12)
        ]
        draw.polygon([(0, h), *points, (w, h)], fill=color)
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--media", default=os.path.join("instance", "demo-media"))
    args = parser.parse_args()
    media = os.path.abspath(args.media)
    app = create_app({"IMAGEKIT_MEDIA_ROOT": media})

    os.makedirs(os.path.join(media, "photos"), exist_ok=True)
    names = []
    for index in range(3):
        name = f"photos/landscape-{index + 1}.jpg"
        draw_photo(index).save(os.path.join(media, name), quality=90)
        names.append(name)
    print(f"Drew {len(names)} photos of 3000x2000 in {media}/photos")

    client = app.test_client()
    with app.app_context():
        for name in names:
            for spec_id in SPECS:
                file = LazyGeneratedImageFile(spec_id, source=name)
                start = time.perf_counter()
                file.generate()
                took = (time.perf_counter() - start) * 1000
                response = client.get(file.url)
                response.close()
                print(
                    f"{spec_id:26} {file.width:4}x{file.height:<4} {took:6.1f} ms  "
                    f"HTTP {response.status_code}  {file.url}"
                )
                print(f"{'':26} {file.path}")
    print(f"Serve them: FLASK_IMAGEKIT_MEDIA_ROOT={media} flask --app example_app run")


if __name__ == "__main__":
    main()
