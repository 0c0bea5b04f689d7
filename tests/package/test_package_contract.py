"""The package contract without MLflow: layout names, checksum tags, the two checks of
atr.package.verify (each refusal names the file), the fail-safe reason codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atr.package.checksums import (
    ChecksumError,
    checksum_tags,
    checksums_from_tags,
    package_checksums,
)
from atr.package.layout import (
    MANIFEST_FILE,
    PACKAGE_ARTIFACT,
    PACKAGE_PATH,
    REQUIRED_FILES,
    SHA_TAG_PREFIX,
    PackageError,
)
from atr.package.manifest import recorded_checksums, verify_package, write_package_manifest
from atr.package.reasons import FAILSAFE_REASONS, IMAGE_UNREADABLE
from atr.package.verify import check_local_package, verify_against_tags
from atr.policy.decision import REASON_INVALID, REASON_UNCERTAIN


def _package(root: Path) -> Path:
    """Files only (no loadable network): enough for the checksum checks."""
    root.mkdir()
    for name in (*REQUIRED_FILES, "policy.json"):
        (root / name).write_text(f"{name} contents")
    write_package_manifest(root, "tiny")
    return root


def _tags(package: Path) -> dict[str, str]:
    return {**checksum_tags(package_checksums(package)), "eval.test.leak_rate": "0"}


def test_layout_names_the_artifact_once() -> None:
    assert f"artifacts/{PACKAGE_ARTIFACT}" == PACKAGE_PATH
    assert SHA_TAG_PREFIX == "sha256."
    assert issubclass(ChecksumError, PackageError) and issubclass(PackageError, ValueError)


def test_checksum_tags_round_trip_ignoring_other_tags(tmp_path: Path) -> None:
    package = _package(tmp_path / "pkg")
    tags = _tags(package)
    assert tags[f"{SHA_TAG_PREFIX}{MANIFEST_FILE}"]
    assert checksums_from_tags(tags) == package_checksums(package)


def test_manifest_is_read_in_both_shapes(tmp_path: Path) -> None:
    package = _package(tmp_path / "pkg")
    written = recorded_checksums(package)  # {"files": ...}, as the evaluate stage writes
    assert set(written) == {*REQUIRED_FILES, "policy.json"} and verify_package(package) == []
    (package / MANIFEST_FILE).write_text(json.dumps({"sha256": written}))
    assert recorded_checksums(package) == written


def test_local_check_names_a_file_edited_after_evaluation(tmp_path: Path) -> None:
    package = _package(tmp_path / "pkg")
    assert check_local_package(package) == package_checksums(package)
    (package / "policy.json").write_text("hand-tuned")
    with pytest.raises(ChecksumError, match=r"package\.json for \['policy\.json'\]"):
        check_local_package(package)
    (package / "taxonomy.json").unlink()
    with pytest.raises(PackageError, match="taxonomy.json"):
        check_local_package(package)


def test_download_check_names_every_kind_of_mismatch(tmp_path: Path) -> None:
    package = _package(tmp_path / "pkg")
    tags = _tags(package)
    assert verify_against_tags(package, tags) == package_checksums(package)
    with pytest.raises(ChecksumError, match="no sha256"):
        verify_against_tags(package, {"eval.test.leak_rate": "0"})

    (package / "model.onnx").write_bytes(b"swapped network")
    with pytest.raises(ChecksumError, match=r"sha256 tags for \['model\.onnx'\]"):
        verify_against_tags(package, tags)
    (package / "model.onnx").write_text("model.onnx contents")

    (package / "notes.txt").write_text("added later")
    with pytest.raises(ChecksumError, match="notes.txt"):
        verify_against_tags(package, tags)
    (package / "notes.txt").unlink()

    # Tags rewritten to fit an edited file still disagree with package.json.
    (package / "policy.json").write_text("hand-tuned")
    with pytest.raises(ChecksumError, match=r"package\.json for \['policy\.json'\]"):
        verify_against_tags(package, _tags(package))


def test_failsafe_reasons_include_the_policys_invalid_scores_only() -> None:
    assert IMAGE_UNREADABLE == "image_unreadable"
    assert REASON_INVALID in FAILSAFE_REASONS and REASON_UNCERTAIN not in FAILSAFE_REASONS
