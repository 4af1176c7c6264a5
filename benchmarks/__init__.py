"""Reproducible measurements (not tests): ``python -m benchmarks [MODULE ...]``.

Each module of this package is one benchmark with a ``main()`` that prints its figures; the
runner imports and runs them all, or only the ones named. Figures go to BENCHMARKS.md by hand,
with the command that produced them.
"""
