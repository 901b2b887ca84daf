from __future__ import annotations

from pathlib import Path

from prodready._doctor import Finding, diagnose, pinned_versions, render


def test_pins_are_read_from_a_constraints_file(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# comment\nPyYAML==6.0.3\nsqlalchemy==2.1.9 ; python_version>'3'\n")
    assert pinned_versions(constraints) == {"pyyaml": "6.0.3", "sqlalchemy": "2.1.9"}


def test_this_checkout_is_healthy() -> None:
    findings = diagnose(with_kernel=True)
    assert [f.what for f in findings if not f.ok] == []
    assert any("kernel runs" in f.what for f in findings)


def test_problems_come_with_a_fix() -> None:
    text = render([Finding(True, "fine"), Finding(False, "broken", "do this")])
    assert "✓ fine" in text and "✗ broken\n      fix: do this" in text
    assert text.endswith("1 problem(s) found.")
