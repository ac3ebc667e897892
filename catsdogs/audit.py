"""``python -m catsdogs.audit [--data-dir D] [--model M] [--output DIR]`` (``catsdogs-audit``): what is wrong with
a labelled image set, before anything trains on it.

Examples:
    python -m catsdogs.audit --data-dir data/cats_vs_dogs_small --output audit/
    python -m catsdogs.audit --data-dir data/x --weights ~/mobilenet_2_5_224_tf_no_top.h5 --output audit/
    python -m catsdogs.audit --data-dir photos/ --model saved_models/mobilenet.keras --output audit/

``--data-dir`` is a ``data_prep`` output (every split is audited together) or any folder of class folders.
Reported (``catsdogs.audits``): the images most likely labelled wrong (cleanlab, on out-of-sample
probabilities: k-fold of a head on a pretrained base's features, or ``--model``'s), near-duplicate groups
within and across splits (leaks), outliers, odd images (dark, bright, blurred, tiny, extreme shape), and the
counts per class and split. Without the base's weights, the label and outlier checks say so in one line and
the rest still runs. Nothing is changed: ``data_prep --exclude/--relabel`` writes a new split from the CSVs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catsdogs.cli import ArgumentParser, report_failures, run_cli
from catsdogs.config import DEFAULT_DATA_DIR, SPLITS
from catsdogs.data.near_duplicates import AUDIT_EXTRA
from catsdogs.errors import UserError, require_optional

DEFAULT_BASE = "mobilenet"
DEFAULT_ALPHA = 0.25  # the MobileNet whose ImageNet weights ship with Keras at 224 px and take minutes on a CPU
DEFAULT_SIZE = 224


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.audit",
                            description="Find label errors, near-duplicates, outliers and odd images in an image set.")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="a data_prep output (all its splits) or a folder with one sub-folder per class")
    parser.add_argument("--output", default="audit", metavar="DIR", help="where the report files go")
    parser.add_argument("--model", metavar="PATH",
                        help="a trained model whose probabilities the label check uses (default: k-fold of a head "
                             "on --base's features)")
    parser.add_argument("--unsafe", action="store_true", help="allow a --model with Python code (Lambda layers)")
    base = parser.add_argument_group("features (label, near-duplicate and outlier checks)")
    base.add_argument("--base", default=DEFAULT_BASE, help="the pretrained network whose features compare images")
    base.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="MobileNet's width (--base mobilenet)")
    base.add_argument("--image-size", type=int, default=DEFAULT_SIZE, help="the base's input size")
    base.add_argument("--weights", default="imagenet",
                      help="imagenet (Keras's cache), a local weights file, or none (random: for tests only)")
    parser.add_argument("--folds", type=int, default=5, help="folds of the cross-validation behind the label check")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the folds and of a random base (--weights none): the same data, the same report")
    parser.add_argument("--show", type=int, default=30, metavar="N", help="suspects and outliers drawn per finding")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.folds < 2 or args.show < 1 or args.batch_size < 1 or args.image_size < 32:
        raise UserError("--folds must be at least 2, --show and --batch-size at least 1, --image-size at least 32")
    require_optional("cleanlab", "cleanlab", "python -m catsdogs.audit", AUDIT_EXTRA)
    # deferred: the library, which --help and flag errors should not wait for
    from catsdogs.audits.labels import check_labels, out_of_sample_probabilities
    from catsdogs.audits.outliers import oddities, outlier_scores, outliers
    from catsdogs.audits.report import Audit, AuditedImage, write_report
    from catsdogs.data.files import read_image_folder, read_splits
    from catsdogs.data.images import check_files
    from catsdogs.data.near_duplicates import groups_of, near_duplicate_pairs, perceptual_hash
    from catsdogs.outputs import claim_output_dir, quiet_tensorflow
    from catsdogs.runtime.prediction import predict_files, progress_bar

    data_dir = Path(args.data_dir)
    if (data_dir / SPLITS[0]).is_dir():
        folders = read_splits(data_dir)
    else:
        if not data_dir.is_dir():
            raise UserError(f"data folder {data_dir} does not exist; pass a data_prep output or a folder of class "
                            "folders")
        folders = {"all": read_image_folder(data_dir)}
    class_names = next(iter(folders.values())).class_names
    classifier = None
    if args.model:  # opened first: a model for other classes is refused before any work
        from catsdogs.runtime.opening import open_classifier  # deferred: Keras, for a .keras model

        classifier = open_classifier(args.model, unsafe=args.unsafe)
        if list(classifier.info.class_names) != list(class_names):
            raise UserError(f"--model {args.model} has the classes {list(classifier.info.class_names)}; the data has "
                            f"{list(class_names)}")
    output = claim_output_dir(args.output, [data_dir])  # before any work: results never land among the images
    listed = [AuditedImage(path, split, label) for split, folder in folders.items()
              for path, label in zip(folder.paths, folder.labels)]
    checks = check_files([image.path for image in listed], args.image_size, progress=sys.stderr.isatty())
    failures = [check.failure() for check in checks if not check.ok]
    usable = {check.path: check for check in checks if check.ok}
    images = [image for image in listed if image.path in usable]
    if not images:
        report_failures(failures, 0)
        raise UserError(f"no usable image in {data_dir}")
    audit = Audit(class_names, images, failures=failures, shown=args.show)
    labels = np.array([image.label for image in images])
    paths = [image.path for image in images]

    hashes = []
    with progress_bar(len(images), None) as bar:
        bar.set_description("hashes and odd images")
        for index, image in enumerate(images):
            hashes.append(perceptual_hash(image.path))
            audit.oddities += oddities(index, usable[image.path])
            bar.update()

    features = None
    try:
        quiet_tensorflow()
        import keras  # deferred: Keras and TensorFlow

        from catsdogs.audits.features import feature_extractor, image_features  # deferred: as keras

        weights = None if args.weights.lower() == "none" else args.weights
        # A random base's features vary with its draw: in 48 draws, 3 did not rank a planted flip first.
        keras.utils.set_random_seed(args.seed)
        options = {"alpha": args.alpha} if args.base == "mobilenet" else {}
        extractor = feature_extractor(args.base, args.image_size, weights, options)
        kept, rows, late = image_features(extractor, paths, args.image_size, args.batch_size)
    except UserError as exc:
        checks_left = "outlier check" if classifier is not None else "label and outlier checks"
        audit.label_note = "" if classifier is not None else f"needs {args.base}'s features: {exc}"
        print(f"{checks_left} skipped: they need {args.base}'s features: {exc}", file=sys.stderr)
    else:
        if late or len(kept) != len(paths):
            raise UserError(f"{len(late)} files failed to decode after their check: {late[0] if late else ''}")
        features = rows

    probabilities = None
    if classifier is not None:  # the model's own probabilities (in-sample on its training split)
        report = predict_files(classifier, paths, args.batch_size, progress=None)
        by_path = {result.path: result.probabilities for result in report.results}
        missing = [path for path in paths if path not in by_path]
        if missing:
            raise UserError(f"--model could not read {len(missing)} files the checks passed, e.g. {missing[0]}")
        probabilities = np.stack([by_path[path] for path in paths])
    elif features is not None:
        probabilities = out_of_sample_probabilities(features, labels, args.folds, seed=args.seed)
    if probabilities is not None:
        audit.labels = check_labels(labels, probabilities)
    if features is not None:
        audit.outlier_scores = outlier_scores(features)
        audit.outlier_indices = outliers(audit.outlier_scores)
    audit.groups = groups_of(near_duplicate_pairs(hashes, features))

    written = write_report(audit, output)
    summary = audit.summary()
    print(f"{summary['images']} images ({', '.join(f'{s} {sum(c.values())}' for s, c in summary['counts'].items())}): "
          f"{summary['label_issues']} label issues, {summary['near_duplicate_groups']} near-duplicate groups "
          f"({summary['leaking_groups']} across splits), {summary['outliers']} outliers, {summary['odd_images']} odd "
          f"images")
    for warning in summary["unbalanced"]:
        print(f"warning: {warning}")
    print(f"wrote {output / 'report.html'} and {len(written) - 1} more files in {output}")
    return report_failures(failures, len(images))


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
