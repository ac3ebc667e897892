"""TensorFlow Serving's REST predict API, its bodies only: what a client sends, what it gets back.

A client written against TF Serving (``POST /v1/models/<name>:predict``) sends one of two shapes:

- row ("instances"): ``{"signature_name": "...", "instances": [example, ...]}``, where an example is
  the value of the signature's one input (a nested list for a tensor, ``{"b64": "..."}`` for bytes)
  or an object naming it (``{"image_bytes": {"b64": "..."}}``); the answer is ``{"predictions": [...]}``;
- columnar ("inputs"): ``{"inputs": value}`` or ``{"inputs": {"image": value}}``; the answer is
  ``{"outputs": ...}``.

Binary values travel base64-encoded as ``{"b64": ...}`` (TF Serving's rule for string tensors). The
exported SavedModel's signatures take these bodies as they are; our server (``catsdogs.serve``)
parses the same bodies with the functions here, so a client works against either.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from catsdogs.errors import UserError


class RequestError(UserError):
    """A request body that does not follow TF Serving's REST API; the message says what is wrong."""


def _decode(value: Any) -> Any:
    """``{"b64": text}`` -> bytes, recursively through lists; anything else unchanged."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RequestError('a binary value must be {"b64": "<base64 text>"} and nothing else')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("a b64 value is not valid base64") from None
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _unwrap(value: Any, input_name: str) -> Any:
    """An example or a columnar value may name the signature's one input: ``{"image": ...}``."""
    if isinstance(value, dict) and set(value) != {"b64"}:
        if set(value) != {input_name}:
            raise RequestError(f"this signature has one input, {input_name!r}; got {sorted(value)}")
        return value[input_name]
    return value


def request_values(body: Any, input_name: str) -> tuple[list[Any], bool]:
    """The examples of a predict request for a one-input signature, b64 decoded, and whether it was row format."""
    if not isinstance(body, dict):
        raise RequestError('the body must be a JSON object with "instances" or "inputs"')
    if ("instances" in body) == ("inputs" in body):
        raise RequestError('the body must have exactly one of "instances" (row format) and "inputs" (columnar)')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError('"instances" must be a non-empty list')
        return [_decode(_unwrap(example, input_name)) for example in instances], True
    values = _decode(_unwrap(body["inputs"], input_name))
    if not isinstance(values, list) or not values:
        raise RequestError('"inputs" must hold a non-empty list (a batch)')
    return values, False


def response_body(probabilities: np.ndarray, row: bool) -> dict[str, Any]:
    """TF Serving's answer for a one-output signature: ``{"predictions": ...}`` (row) or ``{"outputs": ...}``."""
    values = np.asarray(probabilities, np.float32).tolist()
    return {"predictions": values} if row else {"outputs": values}
