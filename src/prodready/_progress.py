"""The learner's progress: a small JSON file keyed by exercise id.

Keyed by id, never by position, so a course upgrade keeps it. Ids this version of the
course does not know are kept untouched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"


class ProgressStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / PROGRESS_FILE
        self.notice = ""  # set when a damaged file had to be set aside

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not a mapping of exercise ids")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # Never silently drop a damaged file: keep it aside and start fresh.
            aside = self.path.with_name(f"{PROGRESS_FILE}.damaged-{time.strftime('%Y%m%d%H%M%S')}")
            self.path.replace(aside)
            self.notice = f"progress file was unreadable ({e}); kept it as {aside.name}"
            return {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def record_result(self, exercise_id: str, passed: bool) -> None:
        data = self.load()
        entry = data.setdefault(exercise_id, {})
        entry["passed"] = passed
        entry["checked_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._save(data)

    def record_hint(self, exercise_id: str, level: int) -> None:
        data = self.load()
        entry = data.setdefault(exercise_id, {})
        entry["hints_seen"] = max(level, int(entry.get("hints_seen", 0)))
        self._save(data)

    def record_give_up(self, exercise_id: str) -> None:
        data = self.load()
        entry = data.setdefault(exercise_id, {})
        entry.setdefault("gave_up_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
        self._save(data)

    def passed(self, exercise_id: str) -> bool:
        return bool(self.load().get(exercise_id, {}).get("passed", False))

    def hints_seen(self, exercise_id: str) -> int:
        return int(self.load().get(exercise_id, {}).get("hints_seen", 0))
