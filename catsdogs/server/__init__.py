"""The server: a model behind HTTP, for programs (TF Serving's REST API) and for people (a page), replaced
under load by a newer one when its source changes.

The model is any ``runtime.classifier.Classifier`` (``runtime.opening.open_classifier``): a ``.keras`` file or
an export, whose ``prepare`` checks an upload in its request thread and ``predict_items`` answers a batch.

- ``overlays``: Grad-CAM's overlay of an upload, as PNG bytes, for a classifier that can explain.
- ``batching``: ``Batcher``, which gathers concurrent requests' images into one batch within a few
  milliseconds, and counts the batch sizes.
- ``limits``: what a request may hold (bytes, images, pixels, seconds), as data.
- ``memory``: handing freed memory back to the system after a large request or a retired model.
- ``versions``: ``ModelVersions``, the serving model and the ones before it: a new one from the ``--model``
  file or the saved-models folder is loaded beside it, checked, and swapped in; a bad one is refused.
- ``app``: the Starlette application: ``/predict``, ``/v1/models/<name>[:predict|/metadata]``, ``/healthz``,
  ``/metrics`` (Prometheus text) and the page at ``/``.
"""
