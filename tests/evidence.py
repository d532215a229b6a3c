"""What each proof suite found, kept for the cybersecurity test protocol (`dfa security-protocol`).

A suite under fault or attack calls `record` once it has checked what it ran, before it asserts, so a
failing run leaves its figures too. Each record is one JSON file in `test-artifacts/protocol/` (or
`DFA_EVIDENCE_DIR`), overwritten by the next run of the same suite.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVIDENCE_DIR_ENV = "DFA_EVIDENCE_DIR"


def evidence_dir() -> Path:
    return Path(os.environ.get(EVIDENCE_DIR_ENV, "test-artifacts/protocol"))


def record(
    suite: str,
    *,
    title: str,
    requirements: list[str],
    method: str,
    form: str,
    figures: dict[str, Any],
    violations: list[str],
) -> Path:
    """Keep what `suite` did (`method`, in words), what it counted (`figures`: plain numbers and strings) and
    every violation it found, in words; the suite passed when there are none."""
    directory = evidence_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{suite}.json"
    document = {
        "suite": suite,
        # The test file, so the protocol can match the suite with the test run's results.
        "test_file": os.environ.get("PYTEST_CURRENT_TEST", "").partition("::")[0],
        "title": title,
        "requirements": requirements,
        "method": method,
        "form": form,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "violations": violations,
        "passed": not violations,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
