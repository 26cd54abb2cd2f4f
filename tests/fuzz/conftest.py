"""Fuzzing tier: property-based tests (hypothesis) and schemathesis against /openapi.json.

The budget is bounded for CI: ``WSGATE_FUZZ_EXAMPLES`` (default 600) is the number of generated
requests for webservice.php; the web-UI fuzzer and schemathesis run a share of it. A longer hunt:

    WSGATE_FUZZ_EXAMPLES=5000 scripts/test tests/fuzz

The example database (failures found, to replay first next time) is kept in
``test-output/hypothesis``. The counts of what ran are printed at the end of the run.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[2]
#: hypothesis keeps its files (the example database, its constants cache) here, not in the
#: working directory.
HYPOTHESIS_HOME = ROOT / "test-output" / "hypothesis"
set_hypothesis_home_dir(str(HYPOTHESIS_HOME))

#: Requests generated for webservice.php; the other fuzzers take a share of it.
EXAMPLES = int(os.environ.get("WSGATE_FUZZ_EXAMPLES", "600"))

settings.register_profile(
    "wsgate-fuzz",
    database=DirectoryBasedExampleDatabase(HYPOTHESIS_HOME / "examples"),
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile("wsgate-fuzz")

#: What the fuzzers did, by fuzzer: printed in the terminal summary.
REPORT: dict[str, Counter[str]] = {}


def report(fuzzer: str) -> Counter[str]:
    return REPORT.setdefault(fuzzer, Counter())


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not REPORT:
        return
    terminalreporter.section("fuzzing")
    for fuzzer, counts in REPORT.items():
        total = counts.get("cases", 0)
        details = ", ".join(f"{name} {count}" for name, count in sorted(counts.items())
                            if name != "cases")
        terminalreporter.write_line(f"{fuzzer}: {total} cases ({details})")
