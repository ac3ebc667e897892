"""What ``python -m catsdogs.audit`` finds in a labelled image set, before anything trains on it.

- ``features``: a pretrained base's pooled features for every image (the default: MobileNet 0.25, 224 px).
- ``labels``: out-of-sample probabilities (k-fold on the features, or a given model) and cleanlab's ranking of
  the images whose label is most likely wrong.
- ``outliers``: images that fit no class (cleanlab's out-of-distribution score on the features), and odd
  images: too dark, too bright, blurred, tiny, or of an extreme shape.
- ``report``: the counts per class and split, and every finding as HTML (thumbnails), CSV, JSON and PNG contact
  sheets.

Near-duplicates are found by ``catsdogs.data.near_duplicates``, which ``data_prep`` also uses.
"""
