"""A small app for running ``flask --app tests.cliapp:create_app imagekit ...`` for real.

``create_app()`` reads its paths from the environment:

* ``CLIAPP_MEDIA_ROOT``: where cache files go (``IMAGEKIT_MEDIA_ROOT``);
* ``CLIAPP_PICS_DIR``: the directory of JPEGs the source group walks.

Nothing is registered at import time: the spec and the source group go on the
extension inside ``create_app()``.
"""

from __future__ import annotations

import glob
import os

from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.processors import ResizeToFill


# fmt: off
class JpegsInADirectory(object):  # noqa: UP004 - exactly as in the documentation
    def __init__(self, dir):
        self.dir = dir

    def files(self):
        os.chdir(self.dir)
        for name in glob.glob('*.jpg'):
            yield open(name)  # noqa: SIM115 - exactly as in the documentation
# fmt: on


class AvatarThumbnail(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}


def create_app() -> Flask:
    media_root = os.environ["CLIAPP_MEDIA_ROOT"]
    pics_dir = os.environ["CLIAPP_PICS_DIR"]
    instance_path = os.path.join(os.path.dirname(os.path.abspath(media_root)), "instance")
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(IMAGEKIT_MEDIA_ROOT=media_root)
    imagekit = ImageKit(app)
    imagekit.register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    imagekit.register.source_group("myapp:profile:avatar_thumbnail", JpegsInADirectory(pics_dir))
    return app
