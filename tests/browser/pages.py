"""What the browser tests read off a page: images as the browser decoded them, screenshots.

A note on sizes: for an ``<img>`` whose image came from a ``srcset`` with ``w``
descriptors, ``naturalWidth`` is *density-corrected*: the candidate's width
divided by its density (descriptor / the slot ``sizes`` gave), which is the slot
width, not the decoded pixels. :func:`decoded_size` loads ``currentSrc`` alone
(no srcset, density 1: from the browser's cache) to get the pixels.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from PIL import Image

if t.TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

__all__ = [
    "ALL_IMAGES_SETTLED",
    "assert_all_loaded",
    "assert_not_blank",
    "decoded_size",
    "natural_size",
    "page_images",
    "pictures",
    "screenshot",
    "scroll_through",
]

#: Waits until every <img> of the page has finished loading (or failed to).
ALL_IMAGES_SETTLED = "() => Array.from(document.images).every((img) => img.complete)"

# The pixel size of an image URL, decoded on its own (density 1).
_DECODE = """async (url) => {
    const img = new Image();
    img.src = url;
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
}"""

# Every <picture>'s <img>: what the browser chose, how it laid it out, what it offered.
_PICTURES = """() => Array.from(document.querySelectorAll("picture")).map((picture) => {
    const img = picture.querySelector("img");
    const box = img.getBoundingClientRect();
    const sources = Array.from(picture.querySelectorAll("source")).map((source) => ({
        type: source.type, srcset: source.srcset, sizes: source.sizes,
    }));
    return {
        alt: img.alt, currentSrc: img.currentSrc, complete: img.complete,
        naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
        box: [box.x, box.y + window.scrollY, box.width, box.height],
        width: img.getAttribute("width"), height: img.getAttribute("height"),
        srcset: img.srcset, sizes: img.sizes, sources: sources,
        background: getComputedStyle(img).backgroundImage,
    };
})"""


def natural_size(image: Locator) -> tuple[int, int]:
    """The size the browser gives the decoded image (0 x 0 if it did not load).

    The pixel size for an ``<img>`` without ``srcset``; see the module for one with it.
    """
    width, height = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    return int(width), int(height)


def decoded_size(page: Page, url: str) -> tuple[int, int]:
    """The pixel size of the image at ``url`` as the browser decodes it."""
    width, height = page.evaluate(_DECODE, url)
    return int(width), int(height)


def scroll_through(page: Page) -> None:
    """Scroll to the bottom and back, so lazy images below the fold are asked for."""
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_function(ALL_IMAGES_SETTLED)
    page.evaluate("() => window.scrollTo(0, 0)")


def page_images(page: Page) -> list[dict[str, t.Any]]:
    """Every <img> of the page with its src and natural size, once all have settled."""
    page.wait_for_function(ALL_IMAGES_SETTLED)
    images: list[dict[str, t.Any]] = page.evaluate(
        """() => Array.from(document.images).map((img) => ({
            src: img.getAttribute("src"), alt: img.alt, currentSrc: img.currentSrc,
            width: img.naturalWidth, height: img.naturalHeight,
        }))"""
    )
    return images


def assert_all_loaded(page: Page) -> list[dict[str, t.Any]]:
    """Every <img> of the page, once settled; none is broken."""
    images = page_images(page)
    assert images
    broken = [image for image in images if image["width"] == 0]
    assert not broken, broken
    return images


def pictures(page: Page) -> list[dict[str, t.Any]]:
    """Every ``<picture>``'s ``<img>``: its choice, box (page coordinates) and offers, as is."""
    found: list[dict[str, t.Any]] = page.evaluate(_PICTURES)
    return found


def screenshot(page: Page, path: Path) -> None:
    """Save a full-page PNG and check it is a real, non-blank picture."""
    page.wait_for_load_state("load")  # else the page's height may not be known yet
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file()
    assert path.stat().st_size > 20_000, path.stat().st_size
    with Image.open(path) as shot:
        assert shot.format == "PNG"
        assert shot.width == 1280
        assert shot.height >= 600
        assert_not_blank(shot)


def assert_not_blank(shot: Image.Image) -> None:
    """A screenshot of a page, not of an empty one."""
    colours = shot.convert("RGB").resize((64, 64)).getcolors(64 * 64)
    assert colours is not None
    assert len(colours) > 50
