"""The gallery's cards in headless Chromium: ``picture()`` under OnRequest.

Each card is ``picture("example_app:photo:card", ...)``: AVIF and WebP
``<source>``s and a JPEG ``<img>``, each at 320, 480 and 640 px. The page renders
without making any of those files; the browser asks for the one candidate that
fits each card (AVIF, as wide as the card), and that first GET makes it through
the media route. The card keeps its size while the image loads (``width`` and
``height`` of the ``<img>``, ``aspect-ratio`` in the CSS): no layout shift.

Set ``UPDATE_SCREENSHOTS=1`` to write the README's screenshots to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import typing as t
from pathlib import Path

import pytest
from PIL import Image

from example_app.specs import CARD_SIZE, CARD_WIDTHS
from example_app.views import CARD_SIZES

from .conftest import PROJECT_ROOT, LiveServer
from .pages import (
    assert_all_loaded,
    assert_not_blank,
    decoded_size,
    pictures,
    screenshot,
    scroll_through,
)

if t.TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.browser

#: Photos in the gallery: two rows of four cards on a 1280 px wide screen.
SEED_COUNT = 8
#: Where the README's screenshots go (with UPDATE_SCREENSHOTS=1).
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
#: The README's screenshots stay small: JPEG (a PNG of a page of photos is 300+ kB).
MAX_SCREENSHOT_BYTES = 200_000
SCREENSHOT_QUALITY = 85

#: Collects the page's layout shifts from its first paint on (``window.layoutShifts``).
RECORD_LAYOUT_SHIFTS = """
window.layoutShifts = [];
new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
        if (entry.hadRecentInput) continue;
        window.layoutShifts.push({
            value: entry.value,
            moved: entry.sources.map((source) => source.node ? source.node.nodeName : null),
        });
    }
}).observe({type: "layout-shift", buffered: true});
"""
#: The shifts recorded so far, once two more frames have been laid out and reported.
LAYOUT_SHIFTS = """() => new Promise((resolve) => requestAnimationFrame(() =>
    requestAnimationFrame(() => setTimeout(() => resolve(window.layoutShifts), 0))))"""
STYLED = "() => getComputedStyle(document.querySelector('ul.grid')).display === 'grid'"


class HeldImages:
    """Holds back the responses of the cards' images until :meth:`release`.

    While held, the page is laid out as it is before any card image arrives.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.held: list[Route] = []
        self.released = False
        page.route(lambda url: "/media/CACHE/images/photos/" in url, self._handle)

    def _handle(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.held.append(route)

    def release(self) -> None:
        """Let the held requests (and later ones) through."""
        self.released = True
        for route in self.held:
            route.continue_()
        self.held.clear()


def media(live_server: LiveServer) -> Path:
    return live_server.instance / "media"


def cache_files(live_server: LiveServer) -> dict[str, tuple[int, int]]:
    """Every cache file on disk: name -> (size, mtime in ns)."""
    root = media(live_server)
    return {
        path.relative_to(root).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in (root / "CACHE").rglob("*")
        if path.is_file()
    }


def offered(card: dict[str, t.Any]) -> dict[str, int]:
    """Every candidate URL a card offers (its sources' and its img's) -> its width."""
    entries: dict[str, int] = {}
    for value in [source["srcset"] for source in card["sources"]] + [card["srcset"]]:
        for entry in value.split(", "):
            url, descriptor = entry.rsplit(" ", 1)
            entries[url] = int(descriptor.removesuffix("w"))
    return entries


def relative(url: str) -> str:
    """``url`` without its origin, as the page's markup writes it."""
    return re.sub(r"^https?://[^/]+", "", url)


def path_of(url: str) -> str:
    """The file a URL names: its path without the query (the token) or the origin."""
    return relative(url).split("?", 1)[0].removeprefix("/media/")


def save_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """A viewport screenshot (JPEG: small) in the tmp folder, and in docs/screenshots if asked."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), type="jpeg", quality=SCREENSHOT_QUALITY)
    size = shot.stat().st_size
    with Image.open(shot) as img:
        assert img.format == "JPEG"
        assert img.size == (1280, 900)
        assert_not_blank(img)
    assert size < MAX_SCREENSHOT_BYTES, size
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(shot.read_bytes())


def box(card: dict[str, t.Any]) -> tuple[float, ...]:
    return tuple(round(value, 2) for value in card["box"])


def test_the_first_visit_makes_one_avif_per_card_and_nothing_moves(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    assert not list(media(live_server).rglob("*.avif")), "this test needs a fresh server"
    page.add_init_script(RECORD_LAYOUT_SHIFTS)
    images = HeldImages(page)
    page.goto(live_server.url, wait_until="domcontentloaded")
    page.wait_for_function(STYLED)

    # Rendered, laid out, no card image yet: none of the offered files exists.
    before = pictures(page)
    assert len(before) == SEED_COUNT
    on_disk = cache_files(live_server)
    for card in before:
        assert not card["complete"], card["alt"]
        assert card["sizes"] == CARD_SIZES
        assert (card["width"], card["height"]) == tuple(str(side) for side in CARD_SIZE)
        urls = offered(card)
        assert sorted(set(urls.values())) == [*CARD_WIDTHS, CARD_SIZE[0]]
        assert len(urls) == 9  # AVIF, WebP and JPEG at 3 widths
        assert not {path_of(url) for url in urls} & set(on_disk), card["alt"]
        _, _, width, height = card["box"]
        assert width > 0
        assert height == pytest.approx(width * 3 / 4, abs=0.5)  # its room, kept empty

    images.release()
    assert_all_loaded(page)
    after = pictures(page)
    # Every card is where it was, at the size it had, before its image arrived.
    assert [box(card) for card in after] == [box(card) for card in before]
    shifts = page.evaluate(LAYOUT_SHIFTS)
    assert sum(shift["value"] for shift in shifts) < 0.001, shifts

    made = set(cache_files(live_server)) - set(on_disk)
    for card in after:
        url = relative(card["currentSrc"])
        # Chromium chose the AVIF candidate as wide as the 270 px card: 320 px.
        avif = next(source for source in card["sources"] if source["type"] == "image/avif")
        assert f"{url} " in avif["srcset"]
        assert path_of(url).endswith(".avif"), url
        width = offered(card)[url]
        assert width == CARD_WIDTHS[0]
        assert decoded_size(page, url) == (width, width * CARD_SIZE[1] // CARD_SIZE[0])
        # Density-corrected: the slot ``sizes`` gave, which is the card's own width.
        assert card["naturalWidth"] == pytest.approx(card["box"][2], abs=1)
    # Only what the browser asked for was made: one AVIF per card.
    assert made == {path_of(card["currentSrc"]) for card in after}

    # The recorder does see a shift: an unsized image put above the cards moves them.
    first = after[0]["currentSrc"]
    page.evaluate(
        "(url) => { const img = new Image(); img.src = url;"
        " document.querySelector('ul.grid').before(img); return img.decode(); }",
        first,
    )
    assert sum(shift["value"] for shift in page.evaluate(LAYOUT_SHIFTS)) > 0.001
    screenshot(page, tmp_path / "gallery-first-visit.png")


def test_a_second_visit_makes_nothing_and_shows_blur_previews_meanwhile(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        first = context.new_page()
        first.goto(live_server.url)
        assert_all_loaded(first)  # the cards' files exist from now on
    finally:
        context.close()
    files = cache_files(live_server)

    context = browser.new_context(viewport={"width": 1280, "height": 900})  # an empty cache
    try:
        page = context.new_page()
        images = HeldImages(page)
        page.goto(live_server.url, wait_until="domcontentloaded")
        page.wait_for_function(STYLED)
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('picture img'))"
            ".every((img) => img.getBoundingClientRect().height > 0)"
        )
        # Before the images arrive: a blurred preview of each, inline in the page.
        cards = pictures(page)
        assert len(cards) == SEED_COUNT
        for card in cards:
            assert not card["complete"], card["alt"]
            preview = re.fullmatch(
                r'url\("(data:image/[a-z]+;base64,[^"]+)"\)', card["background"]
            )
            assert preview, card["background"]
            assert len(preview.group(1)) <= 1024
        save_screenshot(page, tmp_path, "gallery-loading.jpg")

        images.release()
        assert_all_loaded(page)
        for card in pictures(page):
            assert path_of(card["currentSrc"]).endswith(".avif"), card["currentSrc"]
        page.evaluate("() => document.fonts.ready")
        save_screenshot(page, tmp_path, "gallery.jpg")
    finally:
        context.close()
    # Every file was there: none made again, none rewritten.
    assert cache_files(live_server) == files


@pytest.mark.parametrize(
    ("viewport", "columns"), [(1280, 4), (1100, 3), (800, 2), (420, 1)], ids=lambda v: str(v)
)
def test_sizes_is_the_width_of_a_card_at_every_breakpoint(
    browser: Browser, live_server: LiveServer, viewport: int, columns: int
) -> None:
    context = browser.new_context(viewport={"width": viewport, "height": 900})
    try:
        page = context.new_page()
        page.goto(live_server.url)
        scroll_through(page)
        assert_all_loaded(page)
        cards = pictures(page)
        assert len({round(card["box"][0]) for card in cards}) == columns
        for card in cards:
            shown = card["box"][2]
            # The slot ``sizes`` gives is the card's laid-out width.
            assert card["naturalWidth"] == pytest.approx(shown, abs=1), (viewport, card)
            # The narrowest candidate that fills the card (or the widest there is).
            url = relative(card["currentSrc"])
            width = offered(card)[url]
            wider = [w for w in sorted(set(offered(card).values())) if w >= shown]
            assert width == (wider[0] if wider else CARD_SIZE[0]), (viewport, shown, width)
            assert decoded_size(page, url)[0] == width
            assert path_of(url).endswith(".avif")
    finally:
        context.close()
