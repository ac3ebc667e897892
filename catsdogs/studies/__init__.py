"""Studies over many runs (what ``python -m catsdogs.experiments`` runs): the report's ladder, grids of settings
over seeds, and comparing finished runs.

- ``runs``: an experiment's runs, found by name, reused when finished and continued when interrupted.
- ``ladder``: the report's four steps as runs, scored on the same test images, each tested against the
  step below with McNemar's exact test; results as CSV / JSON / markdown and a figure.
- ``ablation``: a grid over any settings, each cell over seeds; a mean ± std table and a plot per setting.
- ``compare``: one table of runs from their ``config.json`` / ``metrics.json`` / ``history.csv`` and an
  overlay of their validation curves.
"""
