from __future__ import annotations

import json
from pathlib import Path

from prodready._progress import ProgressStore


def test_results_and_hints_are_kept_by_exercise_id(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    store.record_result("validation.strict_types", True)
    store.record_hint("validation.strict_types", 2)
    store.record_hint("validation.strict_types", 1)  # looking back never lowers the level
    assert store.passed("validation.strict_types")
    assert store.hints_seen("validation.strict_types") == 2
    assert not store.passed("validation.forbid_extra")


def test_ids_this_course_version_does_not_know_are_kept(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text(json.dumps({"old.renamed": {"passed": True}}))
    ProgressStore(tmp_path).record_result("validation.strict_types", False)
    data = json.loads((tmp_path / "progress.json").read_text())
    assert data["old.renamed"] == {"passed": True}


def test_a_damaged_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text("{not json")
    store = ProgressStore(tmp_path)
    assert store.load() == {}
    assert "kept it as progress.json.damaged-" in store.notice
    aside = list(tmp_path.glob("progress.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"


def test_a_missing_folder_is_created_on_first_write(tmp_path: Path) -> None:
    ProgressStore(tmp_path / "new" / "state").record_result("x.y", True)
    assert (tmp_path / "new" / "state" / "progress.json").exists()
