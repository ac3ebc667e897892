"""Experiments over many runs: the report's ladder, and comparing finished runs.

- ``ladder``: the report's four steps as runs, scored on the same test images, each tested against the
  step below with McNemar's exact test; results as CSV / JSON / markdown and a figure.
- ``compare``: one table of runs from their ``config.json`` / ``metrics.json`` / ``history.csv`` and an
  overlay of their validation curves.
"""
