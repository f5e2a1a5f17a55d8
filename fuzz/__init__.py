"""Fuzzing and hostile-input helpers for flask_imagekit (test tooling, not shipped).

* :mod:`fuzz.hostile` builds the generated corpus of hostile and corrupt inputs.
* :mod:`fuzz.fuzz_pipeline` runs inputs through the library's entry points, judges
  the outcome (the oracle), mutates seeds and is the standalone fuzzer
  (``python fuzz/fuzz_pipeline.py --seconds N``).
"""
