"""``python -m data_prep`` / ``catsdogs-prep``: flags -> :func:`data_prep.prepare_split`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from catsdogs import __version__
from catsdogs.cli import ArgumentParser, run_cli
from catsdogs.config import CACHE_ENV, DEFAULT_DATA_DIR
from catsdogs.errors import UserError
from data_prep import download
from data_prep.datasets import CLASS_NAMES, DATASETS, make_dataset_source
from data_prep.sources import CSV_ROW
from data_prep.split import DEFAULT_SEED, SPLIT_MODES, SplitCounts, SplitFractions, prepare_split
from data_prep.synthetic import make_synthetic_source

DESCRIPTION = """\
Prepare train/validation/test folders from a Dogs-vs-Cats source: every image is decoded fully; undecodable
files are skipped and replaced by the next candidate, odd formats re-encoded as RGB JPEGs, exact duplicates
dropped. Writes OUT/{train,validation,test}/<class>/, OUT/manifest.csv and OUT/summary.json.

Ready-made sets: --source digits (scikit-learn's bundled handwritten digits at 32 px, no download), mnist,
fashion_mnist, cifar10 (keras.datasets: downloaded once). Their images are split 50/25/25 % per class unless
--train/--val/--test say otherwise (counts, or fractions such as 0.7 0.15 0.15).

Sources (detected automatically): Kaggle dogs-vs-cats.zip or train.zip; a folder of cat.N.jpg / dog.N.jpg
(flat or under train/); Microsoft's kagglecatsanddogs_*.zip or its PetImages/Cat|Dog folder; any folder
with one sub-folder of images per class; a CSV of path,label rows (paths relative to the CSV), or of Kaggle's
id,label rows with --images DIR."""

EPILOG = f"""\
examples:
  %(prog)s --source dogs-vs-cats.zip --out {DEFAULT_DATA_DIR} --split by-id   (the book's split)
  %(prog)s --download --out {DEFAULT_DATA_DIR}
  %(prog)s --synthetic 200 --out /tmp/synthetic_split
  %(prog)s --source digits --out data/digits                    (10 classes, 50/25/25 %% per class)
  %(prog)s --source my_photos/ --out data/mine --train 0.7 --val 0.15 --test 0.15
  %(prog)s --source labels.csv --out data/mine --train 0.7 --val 0.15 --test 0.15
  %(prog)s --source train.zip --split by-id --out data/clean --exclude audit/label_issues.csv   (after an audit)"""


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _count_or_fraction(text: str) -> int | float:
    """``1000`` (images per class) or ``0.7`` (a share of each class's images): a dot makes a fraction."""
    if "." not in text:
        return _count(text)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count such as 500 or a fraction such as 0.25, got {text!r}") \
            from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="catsdogs-prep", description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("source (exactly one)")
    where.add_argument("--source", metavar="PATH", help=f"a zip or folder in one of the layouts above, or a ready-made "
                                                        f"set: {', '.join(DATASETS)} (a path of that name wins)")
    where.add_argument("--download", action="store_true",
                       help="download Microsoft's PetImages archive (about 787 MB; resumable) and use it")
    audit = parser.add_argument_group("acting on an audit (python -m catsdogs.audit); the source is never changed")
    audit.add_argument("--exclude", metavar="FILE",
                       help="a CSV with a path column (the audit's, edited): those files are left out of the new split")
    audit.add_argument("--relabel", metavar="FILE",
                       help="a CSV with path and label (or the audit's suggested_label) columns: those files go to "
                            "that class")
    audit.add_argument("--group-near-duplicates", action="store_true",
                       help="keep each group of near-duplicate photos (the audit's perceptual hash) in one split, so "
                            "none leaks from train into validation or test; the counts move by the members moved")
    parser.add_argument("--images", metavar="DIR",
                        help="with --source LABELS.csv of id,label rows: the folder whose files the ids name "
                             "(<id>.jpg, as Kaggle ships them)")
    where.add_argument("--synthetic", metavar="N", type=_positive,
                       help="generate N synthetic images per class (warm discs = cats, cool squares/triangles = "
                            "dogs) and use them; counts default to 50/25/25%% of N")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_DATA_DIR,
                        help="output folder (must be new or empty); train and evaluate read the default")
    parser.add_argument("--split", choices=SPLIT_MODES, default="random",
                        help="random: seeded shuffle (default); by-id: sorted by the number in the file name, "
                             "first --train to train, next --val to validation, next --test to test "
                             "(ids 0-999 / 1000-1499 / 1500-1999 with the defaults: the book's split)")
    parser.add_argument("--seed", type=_count, metavar="N", default=DEFAULT_SEED,
                        help=f"seed of the random split (default: {DEFAULT_SEED})")
    counts = SplitCounts()
    parser.add_argument("--train", type=_count_or_fraction, metavar="N",
                        help=f"training images per class, or a fraction of each class (default: {counts.train})")
    parser.add_argument("--val", type=_count_or_fraction, metavar="N",
                        help=f"validation images per class, or a fraction (default: {counts.validation})")
    parser.add_argument("--test", type=_count_or_fraction, metavar="N",
                        help=f"test images per class, or a fraction (default: {counts.test})")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT if data_prep wrote it before (never a folder it did not write)")
    parser.add_argument("--link", action="store_true",
                        help="hard-link plain JPEGs from a folder source instead of copying them (copies across "
                             "filesystems); the linked files share storage with the source, so never edit them")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no final line")
    fetch = parser.add_argument_group("--download options")
    fetch.add_argument("--download-dir", metavar="DIR",
                       help=f"where the archive is kept (default: ${CACHE_ENV} or ~/.cache/catsdogs)")
    fetch.add_argument("--url", default=download.PETIMAGES_URL, help="archive URL (a mirror; default: Microsoft's)")
    fetch.add_argument("--sha256", default=download.PETIMAGES_SHA256,
                       help="expected SHA-256 of the archive ('none' skips the check; default: the known value "
                            "for Microsoft's file)")
    made = parser.add_argument_group("--synthetic options")
    made.add_argument("--synthetic-dir", metavar="DIR",
                      help="keep the generated source in DIR (new or empty; default: a temporary folder)")
    made.add_argument("--synthetic-size", metavar="PX", type=_positive,
                      help="square synthetic images of PX pixels (default: random 96-160 per side)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _split_counts(args: argparse.Namespace, dataset: str | None) -> SplitCounts | SplitFractions:
    """The flags' counts or fractions; unset, the book's 1000/500/500, or 50/25/25 % of a generated or
    ready-made set. Fractions are all-or-nothing: a split given no fraction gets none."""
    given = {"train": args.train, "validation": args.val, "test": args.test}
    chosen = {name: value for name, value in given.items() if value is not None}
    if not chosen:
        if args.synthetic:
            quarter = args.synthetic // 4  # 50/25/25 %, every generated image used
            return SplitCounts(args.synthetic - 2 * quarter, quarter, quarter)
        return SplitFractions() if dataset else SplitCounts()
    fractions = [isinstance(value, float) for value in chosen.values()]
    if any(fractions) and not all(fractions):
        raise UserError("give --train, --val and --test all as counts (500) or all as fractions (0.25), not both")
    if all(fractions):
        return SplitFractions(**{name: chosen.get(name, 0.0) for name in given})
    return SplitCounts(**{**SplitCounts().as_dict(), **chosen})


# The library's parameters whose flags have other names (errors name parameters; this command, its flags).
FLAGS = {"validation": "--val", "n_per_class": "--synthetic", "directory": "--synthetic-dir"}


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``catsdogs-prep`` / ``python -m data_prep``; exits with 2 and one line on user errors."""
    run_cli(_main, argv, FLAGS)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [flag for flag, value in (("--source", args.source), ("--download", args.download),
                                       ("--synthetic", args.synthetic)) if value]
    if len(chosen) != 1:
        parser.error("give exactly one of --source PATH, --download, --synthetic N"
                     + (f" (got {', '.join(chosen)})" if chosen else ""))
    dataset = args.source if args.source in DATASETS and not Path(args.source).exists() else None
    counts = _split_counts(args, dataset)
    progress = not args.quiet
    started = time.perf_counter()
    extra: dict = {}
    temporary: Path | None = None
    try:
        if args.download:
            sha256 = None if args.sha256.lower() in ("", "none") else args.sha256
            source = download.download_petimages(args.url, args.download_dir, sha256, progress=progress)
            extra["download"] = {"url": args.url, "sha256": sha256}
        elif args.synthetic:
            if args.synthetic_dir:
                directory = Path(args.synthetic_dir)
            else:
                temporary = Path(tempfile.mkdtemp(prefix="catsdogs-synthetic-"))
                directory = temporary
            source = make_synthetic_source(directory, args.synthetic, args.synthetic_size, seed=args.seed)
            extra["synthetic"] = {"n_per_class": args.synthetic, "seed": args.seed,
                                  "image_size": args.synthetic_size, "kept_in": args.synthetic_dir}
        elif dataset:
            temporary = Path(tempfile.mkdtemp(prefix=f"catsdogs-{dataset}-"))
            source = make_dataset_source(dataset, temporary, progress=progress)
            extra["dataset"] = {"name": dataset, "classes": len(CLASS_NAMES[dataset])}
        else:
            source = Path(args.source)
        summary = prepare_split(source, args.out, split=args.split, seed=args.seed, counts=counts,
                                force=args.force, link=args.link, progress=progress, extra_summary=extra,
                                images_dir=args.images, exclude=args.exclude, relabel=args.relabel,
                                group_near_duplicates=args.group_near_duplicates)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    for row in summary.ignored:  # a CSV's bad rows, named like bad files
        if row["reason"].startswith(CSV_ROW):
            print(f"skipped {row['reason']}", file=sys.stderr)
    for skipped in summary.skipped:  # named even with --quiet: the user must know what was left out
        print(f"skipped {skipped['source']} ({skipped['class']}): {skipped['reason']}", file=sys.stderr)
    if not args.quiet:
        print(f"{summary.describe()} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
