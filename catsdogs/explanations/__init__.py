"""Explanations of a trained classifier: what its layers respond to and why it chose a class.

- ``gradcam``: Grad-CAM heatmaps and overlays (which parts of an image made the choice).
- ``activations``: one tile per channel of a layer's map, for one image.
- ``filters``: the input patterns that maximise a layer's filters (gradient ascent).
- ``backend``: the one-line refusal of the gradient tools off the TensorFlow backend.

All three read layers through ``catsdogs.models.introspection``. They need gradients or layer
outputs of a ``.keras`` model.
"""
