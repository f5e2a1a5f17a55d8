"""The example gallery in headless Chromium: upload, gallery, photo page, errors.

Sizes are checked as the browser decoded them, and every test leaves a
full-page screenshot in its tmp folder. The gallery's ``<picture>`` itself
(formats, layout shift, on-request generation) is tested in test_pictures.py.
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

from example_app.drawing import avatar, draw
from example_app.specs import (
    CARD_SIZE,
    CARD_WIDTHS,
    DISPLAY_BOX,
    FEATURED_SIZE,
    SQUARE_SIZE,
    WEBP_BOX,
)

from .conftest import LiveServer
from .pages import assert_all_loaded, decoded_size, natural_size, screenshot

if t.TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser


def fits(size: tuple[int, int], box: tuple[int, int]) -> bool:
    return size[0] <= box[0] and size[1] <= box[1] and (size[0] == box[0] or size[1] == box[1])


#: What a 1280 px wide browser shows of a card: its narrowest candidate (a card is
#: 270 px wide), in AVIF.
SHOWN_CARD = (CARD_WIDTHS[0], CARD_WIDTHS[0] * CARD_SIZE[1] // CARD_SIZE[0])


def shown_card(image: Locator) -> tuple[str, tuple[int, int]]:
    """The file a card's ``<img>`` shows (path, no query) and its pixel size."""
    url = image.evaluate("(img) => img.currentSrc")
    return url.split("?", 1)[0], decoded_size(image.page, url)


def test_upload_then_see_it_in_the_gallery_and_on_its_page(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    photo = tmp_path / "harbour-at-dusk.png"
    draw("city", (1800, 1200), seed=5).save(photo)
    me = tmp_path / "me.png"
    avatar("Playwright").save(me)

    page.goto(live_server.url)
    page.get_by_role("link", name="Upload a photo").click()
    page.get_by_label("Title").fill("Harbour at dusk")
    page.get_by_label("Photo", exact=True).set_input_files(photo)
    page.get_by_label("Square crop").select_option("b")
    page.get_by_label("Your name").fill("Playwright")
    page.get_by_label("Your avatar").set_input_files(me)
    page.get_by_role("button", name="Upload").click()

    # The photo's page.
    page.wait_for_url(re.compile(r"/photos/\d+$"))
    photo_id = int(page.url.rsplit("/", 1)[1])
    assert page.get_by_role("heading", level=1).inner_text() == "Harbour at dusk"
    assert "“Harbour at dusk” was uploaded." in page.locator(".flash").inner_text()
    images = assert_all_loaded(page)
    assert len(images) == 5  # avatar, display, card, webp, square
    assert fits(natural_size(page.locator("img.display")), DISPLAY_BOX)
    variants = page.locator("figure.variant")
    sizes = {
        figure.get_attribute("data-spec"): natural_size(figure.locator("img"))
        for figure in variants.all()
    }
    assert sizes["example_app:photo:card"] == CARD_SIZE
    assert sizes["example_app:photo:square"] == SQUARE_SIZE
    assert fits(sizes["example_app:photo:webp"], WEBP_BOX)
    webp = page.locator('[data-spec="example_app:photo:webp"] img').get_attribute("src")
    assert webp is not None
    assert webp.endswith(".webp")
    screenshot(page, tmp_path / "photo.png")

    # The gallery: the new photo first, its card's AVIF candidate at the column's width.
    page.get_by_role("link", name="Gallery", exact=True).click()
    page.wait_for_url(live_server.url)
    card = page.locator(f"#photo-{photo_id}")
    assert card.locator(".title").inner_text() == "Harbour at dusk"
    assert card.locator(".byline").inner_text() == "Playwright"
    assert_all_loaded(page)
    path, size = shown_card(card.locator("img.thumb"))
    assert path.endswith(".avif")
    assert size == SHOWN_CARD
    assert natural_size(card.locator("img.avatar")) == (64, 64)
    assert page.locator(".card").first.get_attribute("id") == f"photo-{photo_id}"
    screenshot(page, tmp_path / "gallery.png")


def test_seeded_gallery_and_featured_banners_load(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url)
    assert_all_loaded(page)
    banners = page.locator("img.banner")
    assert banners.count() == 3
    for banner in banners.all():
        assert natural_size(banner) == FEATURED_SIZE
    titles = page.locator(".card .title").all_inner_texts()
    assert {"Alpine dawn", "Evening swell"} <= set(titles)
    for thumb in page.locator("img.thumb").all():
        path, size = shown_card(thumb)
        assert path.endswith(".avif")
        assert size == SHOWN_CARD


def test_text_file_upload_shows_the_error(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list: milk, eggs, a camera.\n")

    page.goto(live_server.url + "upload")
    page.get_by_label("Title").fill("Not a photo")
    page.get_by_label("Photo", exact=True).set_input_files(notes)
    with page.expect_response(
        lambda r: r.url.endswith("/upload") and r.request.method == "POST"
    ) as posted:
        page.get_by_role("button", name="Upload").click()
    assert posted.value.status == 400
    error = page.locator(".field.has-error .error")
    assert error.count() == 1
    message = error.inner_text()
    assert message.startswith("This file is not an image we accept. Upload a JPEG, PNG")
    content = page.content()
    assert "IMAGEKIT_" not in content  # settings and paths are for the server's log
    assert str(live_server.instance) not in content
    assert page.get_by_label("Title").input_value() == "Not a photo"  # kept for another try
    assert page.url == live_server.url + "upload"
    screenshot(page, tmp_path / "upload-error.png")


def test_another_visitor_cannot_take_an_authors_name(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    photo = tmp_path / "dunes.png"
    draw("waves", (800, 600), seed=9).save(photo)
    me = tmp_path / "me.png"
    avatar("Sam").save(me)

    def submit(page: Page, avatar_file: Path) -> int:
        page.goto(live_server.url + "upload")
        page.get_by_label("Title").fill("Dunes")
        page.get_by_label("Photo", exact=True).set_input_files(photo)
        page.get_by_label("Your name").fill("Sam Visitor")
        page.get_by_label("Your avatar").set_input_files(avatar_file)
        with page.expect_response(
            lambda r: r.url.endswith("/upload") and r.request.method == "POST"
        ) as posted:
            page.get_by_role("button", name="Upload").click()
        return posted.value.status

    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        mine, theirs = (context.new_page() for context in contexts)
        assert submit(mine, me) == 302  # the name is new: this browser's from now on
        assert submit(theirs, me) == 400  # another browser (another session cookie)
        error = theirs.locator(".field.has-error .error")
        assert error.inner_text() == (
            "The name “Sam Visitor” is taken by another visitor. Choose another name."
        )
        screenshot(theirs, tmp_path / "name-taken.png")
        assert submit(mine, me) == 302  # still this browser's
    finally:
        for context in contexts:
            context.close()


def test_a_broken_photo_does_not_break_the_gallery(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    # A row whose stored file is damaged (a disk error, a bad restore): the gallery
    # still renders, every image loads, and the broken one shows the placeholder.
    import sqlite3

    media = live_server.instance / "media"
    (media / "photos" / "damaged.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with sqlite3.connect(live_server.instance / "example.sqlite3") as db:
        db.execute(
            "INSERT INTO photo (title, image, crop_anchor, created_at) "
            "VALUES ('Damaged', 'photos/damaged.jpg', 'c', '2100-01-01 00:00:00')"
        )
    response = page.goto(live_server.url)
    assert response is not None
    assert response.status == 200
    images = assert_all_loaded(page)  # the placeholder loads too: nothing shows broken
    damaged = [image for image in images if image["alt"] == "Damaged"]
    assert len(damaged) == 1
    assert damaged[0]["src"].startswith("data:image/svg+xml")
    assert "Damaged" in page.locator(".card .title").all_inner_texts()
    screenshot(page, tmp_path / "gallery-with-a-broken-photo.png")
