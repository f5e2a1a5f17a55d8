"""flask_imagekit's benchmark suite (issue #7): ``python -m bench`` runs it all.

Not part of ``make test``: run ``make bench``. See ``bench/run_all.py``.
"""
