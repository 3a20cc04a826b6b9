"""cfn-lint over every synthesized template: no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.deploy.conftest import Synthesized

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# Warnings CDK's own constructs produce and that this app cannot remove; anything else
# fails the test as well.
ACCEPTED_WARNINGS = {
    # the ECS service's L2 adds an explicit DependsOn on its listener rule, which it also Refs
    "W3005",
}


def test_cfn_lint_finds_no_error_in_any_template(
    dev: Synthesized, prod: Synthesized, fixture_app: Synthesized
) -> None:
    templates = [str(path) for app in (dev, prod, fixture_app) for path in app.template_files]
    # the platform, the console and each service, in each app
    assert len(templates) == sum(2 + len(app.services) for app in (dev, prod, fixture_app))
    result = subprocess.run(
        [str(CFN_LINT), "--format", "json", "--regions", "us-east-1", "--", *templates],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    matches = json.loads(result.stdout or "[]")
    problems = [
        f"{m['Level']} {m['Rule']['Id']} {Path(m['Filename']).name}: {m['Message']}"
        for m in matches
        if m["Level"] == "Error" or m["Rule"]["Id"] not in ACCEPTED_WARNINGS
    ]
    assert problems == [], result.stderr
    assert result.returncode in (0, 4)  # 4: warnings only (the accepted ones above)
