"""Former quick script, now part of the suite: runs ``bench/single.py``.

python bench/fastpath.py [options of bench/single.py]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.single import main  # noqa: E402

if __name__ == "__main__":
    main()
