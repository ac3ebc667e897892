"""``python -m catsdogs.serve [--model M] [--host 127.0.0.1] [--port 8080]`` (``catsdogs-serve``): HTTP predictions.

Examples:
    python -m catsdogs.serve                                         # the default model, http://127.0.0.1:8080/
    python -m catsdogs.serve --model exports/mobilenet-litert/mobilenet.tflite --port 9000
    curl -F image=@cat.jpg http://127.0.0.1:8080/predict
    curl -d '{"signature_name": "serving_bytes", "instances": [{"b64": "..."}]}' \\
         http://127.0.0.1:8080/v1/models/catsdogs:predict

The model is a ``.keras`` file, or an export: ``.tflite``, ``.onnx``, SavedModel folder. Without ``--model``
it is the default of ``--saved-models-dir``. Every ``--model-poll`` seconds, and at once on SIGHUP, the server
looks again: a replaced ``--model`` file, or a new default (a ``train`` that published a better model), is
loaded beside the serving one, checked, and swapped in between batches; a bad one is refused and the old one
goes on (``server.versions``). ``GET /v1/models/<name>`` lists the versions; every prediction names its own.
``/`` is a page to drop photos on; ``POST /predict`` takes images (multipart or the raw body) and
answers labels and probabilities (Grad-CAM overlays with ``?gradcam=1``, ``.keras`` models only);
``/v1/models/<name>:predict``, ``/v1/models/<name>`` and ``/v1/models/<name>/metadata`` answer as
TensorFlow Serving does; ``/healthz``; ``/metrics`` in Prometheus's text format. Concurrent requests
are batched. It listens on 127.0.0.1 only, unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from catsdogs.cli import ArgumentParser, add_model_arguments, run_cli
from catsdogs.errors import UserError, require_optional
from catsdogs.server.limits import Limits

DEFAULT_PORT = 8080
DEFAULT_MODEL_POLL_S = 2.0  # a new model serves within a few seconds; a look costs a few stat() calls


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.serve",
                            description="Serve a model over HTTP: a page, /predict and TF Serving's REST API.")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (0.0.0.0: every interface; anyone who can reach it may use it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port (0: any free one)")
    parser.add_argument("--name", default="catsdogs", help="the model's name in /v1/models/<name> URLs")
    parser.add_argument("--model-poll", type=float, default=DEFAULT_MODEL_POLL_S, metavar="SECONDS",
                        help="how often to look for a new model (a replaced --model file, or a new default in "
                             "--saved-models-dir); 0: only on SIGHUP (kill -HUP PID)")
    limits = parser.add_argument_group("limits")
    default = Limits()
    limits.add_argument("--max-body-mb", type=float, default=default.max_body_bytes / 2**20,
                        help="largest request body")
    limits.add_argument("--max-images", type=int, default=default.max_images, help="images per request")
    limits.add_argument("--max-batch", type=int, default=default.max_batch,
                        help="images per model call, across requests")
    limits.add_argument("--batch-window-ms", type=float, default=1000 * default.batch_window_s,
                        help="how long the first image of a batch waits for others")
    limits.add_argument("--timeout", type=float, default=default.timeout_s,
                        help="seconds before an unanswered request gets 503")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, not {args.port}")
    if min(args.max_body_mb, args.max_images, args.max_batch, args.timeout) <= 0 or args.batch_window_ms < 0:
        raise UserError("--max-body-mb, --max-images, --max-batch and --timeout must be positive, "
                        "--batch-window-ms at least 0")
    if not 0 <= args.model_poll < float("inf"):
        raise UserError(f"--model-poll must be 0 (only on SIGHUP) or a number of seconds, not {args.model_poll}")
    require_optional("uvicorn", "the serve extra", "python -m catsdogs.serve", "pip install 'catsdogs[serve]'")
    # deferred: the server's own packages, which --help and flag errors should not wait for
    from catsdogs.runtime.opening import open_classifier
    from catsdogs.server.app import bind, create_app, run
    from catsdogs.server.versions import ModelSource

    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe)
    limits = Limits(max_body_bytes=int(args.max_body_mb * 2**20), max_images=args.max_images,
                    max_batch=args.max_batch, batch_window_s=args.batch_window_ms / 1000, timeout_s=args.timeout)
    source = ModelSource(Path(args.model) if args.model else None, Path(args.saved_models_dir), args.unsafe)
    app = create_app(classifier, args.name, limits, source, args.model_poll)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    listening = bind(args.host, args.port)  # bound first, so that --port 0 can say which port it got
    print(classifier.describe(), file=sys.stderr)

    def ready() -> None:  # only once uvicorn accepts connections: a client may connect the instant it reads this
        watching = (f"; a new model in {source.model or source.saved_models_dir} is served within "
                    f"{args.model_poll:g} s" if args.model_poll else "; kill -HUP looks for a new model")
        print(f"serving {args.name} on http://{args.host}:{listening.getsockname()[1]}/ (the page), /predict, "
              f"/v1/models/{args.name}:predict{watching}; Ctrl-C stops", file=sys.stderr, flush=True)

    run(app, listening, ready)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
