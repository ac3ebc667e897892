"""The model metadata's schema: files from before it read as version 1, a newer version is refused in one line,
wrong values are named, unknown keys survive a re-save, and nothing outside the schema reads it by key."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from catsdogs.errors import UserError
from catsdogs.metadata import FORMAT_VERSION, METADATA_ENTRY, ModelInfo, TTAChoice, info_from_json, read_sidecar

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "tests" / "fixtures" / "release-0.1.0"


def release_metadata() -> dict:
    with zipfile.ZipFile(RELEASE / "legacy.keras") as archive:
        return json.loads(archive.read(METADATA_ENTRY))


def test_a_file_from_before_the_schema_reads_as_version_1_and_writes_back_the_same():
    values = release_metadata()
    assert "format_version" not in values
    info = info_from_json(json.dumps(values), "legacy.keras")
    assert info.format_version == 1 == FORMAT_VERSION
    assert info.extra.tta.mode == "flip" and info.extra.temperature == pytest.approx(0.0601, abs=1e-4)
    assert info.test_accuracy == values["extra"]["metrics"]["test"]["accuracy"]
    assert info.extra.metrics.test.per_class["cats"].support == 10
    written = json.loads(info.to_json())
    assert written.pop("format_version") == 1 and written == values  # nothing lost, nothing added but the version


def test_an_exports_sidecar_from_the_release_reads_with_its_parity():
    info = read_sidecar(RELEASE / "legacy-litert" / "legacy-tta-calibrated.tflite")
    assert info.extra.export.format == "litert" and info.extra.export.parity.passed is True


def test_a_newer_format_is_one_line_that_says_to_upgrade():
    values = {**release_metadata(), "format_version": FORMAT_VERSION + 1}
    with pytest.raises(UserError, match=rf"^m.keras was written by a newer catsdogs \(metadata format "
                                        rf"{FORMAT_VERSION + 1}; this one reads up to {FORMAT_VERSION}\); upgrade"):
        info_from_json(json.dumps(values), "m.keras")
    with pytest.raises(UserError, match="format_version 'two', not a version number"):
        info_from_json(json.dumps({**values, "format_version": "two"}), "m.keras")


def test_a_wrong_value_is_named_in_one_line():
    values = release_metadata()
    values["extra"]["tta"]["accuracy"] = "high"
    with pytest.raises(UserError) as raised:
        info_from_json(json.dumps(values), "m.keras")
    assert "extra.tta.accuracy" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(UserError, match="class_names must list at least 2 distinct names"):
        info_from_json(json.dumps({**values, "class_names": ["cats"]}), "m.keras")


def test_keys_this_version_does_not_know_survive_a_re_save():
    values = release_metadata()
    values["extra"]["from_the_future"] = {"answer": 42}
    values["extra"]["tta"]["tie_break"] = "fewer views"
    info = info_from_json(json.dumps(values), "m.keras")
    again = json.loads(info.with_extra(tta=TTAChoice.model_validate({**values["extra"]["tta"], "mode": "crops"}))
                       .to_json())
    assert again["extra"]["from_the_future"] == {"answer": 42}
    assert again["extra"]["tta"]["tie_break"] == "fewer views" and again["extra"]["tta"]["mode"] == "crops"


def test_records_are_typed_when_made_in_code():
    info = ModelInfo(["cats", "dogs"], 48, extra={"temperature": "2.5"})
    assert info.extra.temperature == 2.5 and info.extra.tta is None


STRING_KEY_READ = re.compile(r"""\b(?:extra|metrics|export|parity|fit|record)(?:\.get\(|\[)\s*["']""")


def test_nothing_outside_the_schema_reads_the_metadata_by_key():
    """A model's metadata is read through the records' attributes (metrics.json files and an evaluation's own
    metrics dictionaries are not the metadata, and are read in the modules that write them)."""
    metadata_readers = ["runtime", "modelcard.py", "exports", "models", "inference/tuning.py", "training/trainer.py",
                        "evaluate.py", "predict.py", "server"]
    offences = []
    for place in metadata_readers:
        root = ROOT / "catsdogs" / place
        for path in ([root] if root.is_file() else sorted(root.rglob("*.py"))):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "info." in line and STRING_KEY_READ.search(line):
                    offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offences, "\n".join(offences)
    assert STRING_KEY_READ.search('x = info.extra.get("temperature")')  # the check can fail
