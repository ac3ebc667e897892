"""Serving: one loaded model behind HTTP, for programs (TF Serving's REST API) and for people (a page).

- ``predictors``: a ``.keras`` model or an exported one behind one ``Predictor`` (batches in, class
  probabilities out; Grad-CAM for ``.keras`` models).
- ``batching``: ``Batcher``, which gathers concurrent requests' images into one batch within a few
  milliseconds, and counts the batch sizes.
- ``limits``: what a request may hold (bytes, images, pixels, seconds), as data.
- ``app``: the Starlette application: ``/predict``, ``/v1/models/<name>[:predict|/metadata]``, ``/healthz``,
  ``/metrics`` (Prometheus text) and the page at ``/``.
"""
