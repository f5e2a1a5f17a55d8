"""``python -m bench``: run the whole benchmark suite (see ``bench/run_all.py``)."""

from bench.run_all import main

if __name__ == "__main__":
    main()
