"""Reproducible measurements (not tests): ``python -m benchmarks [--write FILE] [NAME ...]``.

Each module of this package is one benchmark: a ``TITLE``, an ``ABOUT`` (markdown: what it measures,
how, the command) and a ``main()`` that prints its figures as markdown. The runner runs them all, or
the ones named; with ``--write`` it also writes them, with the machine and the date, to one markdown
file (``make bench`` regenerates BENCHMARKS.md that way).
"""
