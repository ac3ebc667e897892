"""The server's Grad-CAM answer: an upload's overlay as PNG bytes, for a classifier that can explain."""

from __future__ import annotations

import io

import numpy as np

from catsdogs.plots import overlay_figure
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.images import decode_bytes


def gradcam_png(classifier: Classifier, data: bytes, probabilities: np.ndarray, index: int) -> bytes:
    """The Grad-CAM overlay of the answered class ``index`` over the (model-size) image, as PNG bytes."""
    from catsdogs.explanations.gradcam import grad_cam  # deferred: Keras, which an exported model's server does without

    info = classifier.info
    image = decode_bytes(data, info.image_size)
    heatmap = grad_cam(classifier.keras_model(), image[None].astype(np.float32), class_index=index)[0]
    title = f"{info.class_names[index]} {100 * probabilities[index]:.1f}%"
    buffer = io.BytesIO()
    overlay_figure(image, heatmap, title).savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
