"""The server: one loaded model behind HTTP, for programs (TF Serving's REST API) and for people (a page).

The model is any ``runtime.classifier.Classifier`` (``runtime.opening.open_classifier``): a ``.keras`` file or
an export, whose ``prepare`` checks an upload in its request thread and ``predict_items`` answers a batch.

- ``overlays``: Grad-CAM's overlay of an upload, as PNG bytes, for a classifier that can explain.
- ``batching``: ``Batcher``, which gathers concurrent requests' images into one batch within a few
  milliseconds, and counts the batch sizes.
- ``limits``: what a request may hold (bytes, images, pixels, seconds), as data.
- ``app``: the Starlette application: ``/predict``, ``/v1/models/<name>[:predict|/metadata]``, ``/healthz``,
  ``/metrics`` (Prometheus text) and the page at ``/``.
"""
