"""``python -m catsdogs.audit`` on generated data: a flipped label is the top suspect, a near-copy across splits is a
leak, the report opens in a browser with its thumbnails, and without the base's weights the rest still runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import run_command
from helpers.images import make_split_folder, plant_near_copy
from helpers.training import train_tiny

from catsdogs.metadata import ModelInfo
from catsdogs.models.saving import load_model, save_model

pytest.importorskip("cleanlab", reason="the audit extra is not installed: pip install -e '.[audit]'")

from catsdogs.audit import main as audit_main  # noqa: E402
from catsdogs.data.near_duplicates import (  # noqa: E402
    HASH_BITS_WITH_FEATURES,
    near_duplicate_pairs,
    perceptual_hash,
)

SIZE = 64


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """Colour-coded classes (a random base tells them apart), one flipped training label, one near-copy of a
    training image in test; audited with random weights (``--weights none``)."""
    root = tmp_path_factory.mktemp("audit")
    data = make_split_folder(root / "data", {"train": 20, "validation": 6, "test": 6}, size=SIZE)
    flipped = data / "train" / "dogs" / "was_a_cat.jpg"
    shutil.move(data / "train" / "cats" / "cats.3.jpg", flipped)
    copy = plant_near_copy(data / "train" / "dogs" / "dogs.5.jpg", data / "test" / "dogs" / "copy.jpg")
    code = audit_main(["--data-dir", str(data), "--output", str(root / "audit"), "--weights", "none",
                       "--image-size", str(SIZE)])
    assert code == 0
    return data, root / "audit", flipped, copy


def test_a_flipped_label_is_the_top_suspect_with_the_class_it_should_have(audited):
    _, output, flipped, _ = audited
    suspects = rows(output / "label_issues.csv")
    assert suspects[0]["path"] == str(flipped)
    assert (suspects[0]["given_label"], suspects[0]["suggested_label"], suspects[0]["rank"]) == ("dogs", "cats", "1")
    ranking = json.loads((output / "audit.json").read_text())["label_ranking"]
    assert len(ranking) == 20 * 2 + 6 * 2 * 2 + 1 and ranking[0]["path"] == str(flipped)  # every image is ranked


def test_the_same_data_and_seed_give_the_same_ranking_and_another_seed_another(audited, tmp_path):
    """A random base (``--weights none``) is drawn from ``--seed``: without it, 3 draws in 48 hid the flip."""
    data, output, _, _ = audited

    def ranking(seed: int) -> list[tuple[str, float]]:
        folder = tmp_path / f"seed{seed}"
        assert audit_main(["--data-dir", str(data), "--output", str(folder), "--weights", "none",
                           "--image-size", str(SIZE), "--seed", str(seed)]) == 0
        return [(row["path"], round(row["score"], 6)) for row in json.loads((folder / "audit.json").read_text())["label_ranking"]]

    first = [(row["path"], round(row["score"], 6)) for row in json.loads((output / "audit.json").read_text())["label_ranking"]]
    assert ranking(0) == first
    assert ranking(1) != first


def test_a_near_copy_across_splits_is_reported_as_a_leak_by_path(audited):
    data, output, _, copy = audited
    groups = rows(output / "near_duplicates.csv")
    leaking = {row["path"] for row in groups if row["leak"] == "True"}
    assert leaking == {str(data / "train" / "dogs" / "dogs.5.jpg"), str(copy)}
    assert {row["split"] for row in groups if row["path"] in leaking} == {"train", "test"}
    counts = {(row["split"], row["class"]): int(row["images"]) for row in rows(output / "counts.csv")}
    assert counts == {("train", "cats"): 19, ("train", "dogs"): 21, ("validation", "cats"): 6,
                      ("validation", "dogs"): 6, ("test", "cats"): 6, ("test", "dogs"): 7}


def test_look_alikes_need_both_signals_and_the_same_picture_needs_only_its_hash():
    """Hashes 12 bits apart (look-alikes, for a hash) pair only when the features agree; 2 bits apart always pair."""
    alike, unlike = np.array([[1.0, 0.1], [1.0, 0.12]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    look_alikes = [0, (1 << 12) - 1]
    assert near_duplicate_pairs(look_alikes) == []
    assert near_duplicate_pairs(look_alikes, unlike) == []
    assert [pair[:3] for pair in near_duplicate_pairs(look_alikes, alike)] == [(0, 1, 12)]
    same_picture = [0, 0b11]
    assert [pair[:3] for pair in near_duplicate_pairs(same_picture, unlike)] == [(0, 1, 2)]


def test_the_hash_moves_little_under_re_encoding_resizing_and_cropping(audited, tmp_path):
    data, _, _, copy = audited
    original = perceptual_hash(data / "train" / "dogs" / "dogs.5.jpg")
    assert bin(original ^ perceptual_hash(copy)).count("1") <= HASH_BITS_WITH_FEATURES


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_html_report_opens_in_a_browser_and_shows_its_thumbnails(audited):
    from playwright.sync_api import sync_playwright

    _, output, flipped, _ = audited
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((output / "report.html").resolve().as_uri())
            shown = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
            text = page.text_content("body")
        finally:
            browser.close()
    assert shown >= 3 and str(flipped) in text and "across splits (leak)" in text


def test_without_the_bases_weights_the_label_check_says_so_and_the_rest_runs(tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2, "test": 2}, size=SIZE)
    plant_near_copy(data / "train" / "cats" / "cats.1.jpg", data / "test" / "cats" / "copy.jpg")
    code, out, err = run_command(audit_main, ["--data-dir", data, "--output", tmp_path / "audit",
                                              "--image-size", SIZE], capsys)
    assert code == 0
    skipped = [line for line in err.splitlines() if line.startswith("label and outlier checks skipped")]
    assert len(skipped) == 1 and "mobilenet" in skipped[0] and "weights" in skipped[0]
    assert rows(tmp_path / "audit" / "label_issues.csv") == []
    assert {row["path"] for row in rows(tmp_path / "audit" / "near_duplicates.csv")} == {
        str(data / "train" / "cats" / "cats.1.jpg"), str(data / "test" / "cats" / "copy.jpg")}


def test_with_a_model_its_probabilities_rank_the_labels_even_without_the_bases_weights(audited, tmp_path, capsys):
    data, _, flipped, _ = audited
    model, _ = train_tiny(tmp_path / "model", "small_cnn", 48, ("cats", "dogs"), False)  # the same colours
    code, _, err = run_command(audit_main, ["--data-dir", data, "--model", model, "--output", tmp_path / "audit"],
                               capsys)  # the base's ImageNet weights are not here: the outlier check says so
    assert code == 0 and "outlier check skipped" in err
    assert rows(tmp_path / "audit" / "label_issues.csv")[0]["path"] == str(flipped)
    assert rows(tmp_path / "audit" / "outliers.csv") == []
    keras_model, info = load_model(model)
    other = save_model(keras_model, tmp_path / "birds.keras", ModelInfo(["cats", "birds"], 48, "small_cnn"))
    code, _, err = run_command(audit_main, ["--data-dir", data, "--model", other, "--output", tmp_path / "o2"], capsys)
    assert code == 2 and "['cats', 'birds']" in err and not (tmp_path / "o2").exists()


def test_a_missing_folder_is_one_line_and_nothing_is_written(tmp_path, capsys):
    code, _, err = run_command(audit_main, ["--data-dir", tmp_path / "nowhere", "--output", tmp_path / "audit"],
                               capsys)
    assert code == 2 and err.count("\n") == 1 and "nowhere does not exist" in err
    assert not (tmp_path / "audit").exists()
