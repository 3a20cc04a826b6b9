"""The dependency scan's judgement, on recorded-shape reports (no network): an advisory
blocks unless a live allowlist entry with a reason accepts it; an expired entry fails the
scan; a package pip-audit could not audit, or an npm audit that did not report, is an error,
never a pass."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from longhaul.local import audit
from longhaul.local.audit import (
    AllowEntry,
    AuditError,
    Finding,
    judge,
    load_allowlist,
    npm_findings,
    python_findings,
    scan,
)

ROOT = Path(__file__).resolve().parents[3]
TODAY = dt.date(2026, 11, 30)

# pip-audit 2.10's `--format json --desc off --aliases on`, as it prints a finding and a skip
PIP_AUDIT = {
    "dependencies": [
        {"name": "fastapi", "version": "0.121.0", "vulns": []},
        {
            "name": "jinja2",
            "version": "3.1.2",
            "vulns": [
                {
                    "id": "GHSA-h5c8-rqwp-cp95",
                    "fix_versions": ["3.1.3"],
                    "aliases": ["CVE-2024-22195"],
                }
            ],
        },
    ],
    "fixes": [],
}
PIP_AUDIT_SKIPPED = {
    "dependencies": [
        {
            "name": "aioboto3",
            "skip_reason": "Dependency not found on PyPI and could not be audited: "
            "aioboto3 (15.5.0)",
        },
        {"name": "fastapi", "version": "0.121.0", "vulns": []},
    ],
    "fixes": [],
}
# npm 10/11's `npm audit --json` (auditReportVersion 2)
NPM_AUDIT = {
    "auditReportVersion": 2,
    "vulnerabilities": {
        "aws-cdk": {
            "name": "aws-cdk",
            "severity": "critical",
            "isDirect": True,
            "via": [
                {
                    "source": 1099999,
                    "name": "aws-cdk",
                    "dependency": "aws-cdk",
                    "title": "Credentials printed to the terminal",
                    "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
                    "severity": "critical",
                    "range": "<2.1200.0",
                },
                {
                    "source": 1099998,
                    "name": "aws-cdk",
                    "dependency": "aws-cdk",
                    "title": "Slow template diff",
                    "url": "https://github.com/advisories/GHSA-dddd-eeee-ffff",
                    "severity": "high",
                    "range": "<2.1150.0",
                },
                "some-other-package",
            ],
            "effects": [],
            "range": "<2.1200.0",
            "nodes": ["node_modules/aws-cdk"],
            "fixAvailable": True,
        }
    },
    "metadata": {"vulnerabilities": {"critical": 1, "high": 1, "total": 2}},
}
NPM_UNREACHABLE = {
    "message": "405 Method Not Allowed - POST <the registry>/-/npm/v1/security/advisories/bulk",
    "statusCode": 405,
    "error": {"summary": "", "detail": ""},
}


def entry(**changes: Any) -> AllowEntry:
    fields = {
        "id": "CVE-2024-22195",
        "reason": "Only templates from our own code are rendered; no user input reaches them.",
        "expires": dt.date(2026, 12, 31),
    }
    return AllowEntry.model_validate({**fields, **changes})


def test_an_unknown_python_vulnerability_blocks() -> None:
    verdict = judge(python_findings(PIP_AUDIT), [], TODAY)
    assert [f.id for f in verdict.blocking] == ["GHSA-h5c8-rqwp-cp95"]
    assert not verdict.passed


@pytest.mark.parametrize(
    "allowed_id", ["GHSA-h5c8-rqwp-cp95", "CVE-2024-22195", "ghsa-h5c8-rqwp-cp95"]
)
def test_an_allowlisted_vulnerability_passes_by_its_id_or_any_alias(allowed_id: str) -> None:
    verdict = judge(python_findings(PIP_AUDIT), [entry(id=allowed_id)], TODAY)
    assert verdict.passed
    assert [(f.package, e.id) for f, e in verdict.allowed] == [("jinja2", allowed_id)]


def test_an_entry_for_another_package_does_not_allow_it() -> None:
    verdict = judge(python_findings(PIP_AUDIT), [entry(package="markupsafe")], TODAY)
    assert not verdict.passed
    assert [e.id for e in verdict.unused] == ["CVE-2024-22195"]


def test_an_expired_entry_fails_the_scan_and_allows_nothing() -> None:
    expired = entry(expires=dt.date(2026, 11, 29))
    verdict = judge(python_findings(PIP_AUDIT), [expired], TODAY)
    assert verdict.expired == [expired]
    assert [f.id for f in verdict.blocking] == ["GHSA-h5c8-rqwp-cp95"]
    # expired even with nothing left to match: the entry must be removed or renewed
    assert not judge([], [expired], TODAY).passed


def test_an_entry_is_live_through_its_expiry_date() -> None:
    assert judge(python_findings(PIP_AUDIT), [entry(expires=TODAY)], TODAY).passed


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "allowlist.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[allow]]\nid = "CVE-2024-1"\nexpires = 2027-01-01\n', "entry 1: reason: Field required"),
        ('[[allow]]\nid = "CVE-2024-1"\nreason = "TODO"\nexpires = 2027-01-01\n', "reason"),
        (
            '[[allow]]\nid = "CVE-2024-1"\nreason = "not reachable from any service"\n',
            "entry 1: expires: Field required",
        ),
        (
            '[[allow]]\nid = "CVE-2024-1"\nreason = "not reachable from any service"\n'
            'expires = "soon"\n',
            "entry 1: expires",
        ),
        ('[[ignore]]\nid = "CVE-2024-1"\n', "unknown keys ['ignore']"),
        ("[[allow]\n", "not valid TOML"),
    ],
)
def test_an_entry_needs_an_id_a_reason_and_an_expiry(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(AuditError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load_allowlist(write(tmp_path, text))


def test_a_valid_allowlist_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[allow]]\nid = "GHSA-h5c8-rqwp-cp95"\npackage = "jinja2"\n'
        'reason = "Only our own templates are rendered."\nexpires = 2027-01-31\n',
    )
    assert load_allowlist(path) == [
        AllowEntry(
            id="GHSA-h5c8-rqwp-cp95",
            package="jinja2",
            reason="Only our own templates are rendered.",
            expires=dt.date(2027, 1, 31),
        )
    ]


def test_the_committed_allowlist_is_valid_and_has_no_expired_entry() -> None:
    entries = load_allowlist(ROOT / audit.ALLOWLIST)
    assert [e.id for e in entries if e.expires < dt.date.today()] == []


def test_a_package_pip_audit_could_not_audit_is_an_error_not_a_pass() -> None:
    with pytest.raises(AuditError, match=r"1 of 2 pinned packages could not be audited"):
        python_findings(PIP_AUDIT_SKIPPED)


def test_npm_critical_advisories_block_and_the_others_are_reported() -> None:
    findings = npm_findings(NPM_AUDIT)
    assert [(f.id, f.severity) for f in findings] == [
        ("GHSA-aaaa-bbbb-cccc", "critical"),
        ("GHSA-dddd-eeee-ffff", "high"),
    ]
    verdict = judge(findings, [], TODAY)
    assert [f.id for f in verdict.blocking] == ["GHSA-aaaa-bbbb-cccc"]
    assert [f.id for f in verdict.reported] == ["GHSA-dddd-eeee-ffff"]
    assert judge(findings, [entry(id="GHSA-aaaa-bbbb-cccc")], TODAY).passed


def test_an_npm_audit_that_did_not_report_is_an_error() -> None:
    with pytest.raises(AuditError, match="405 Method Not Allowed"):
        npm_findings(NPM_UNREACHABLE)


def run_scan(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pip: dict[str, Any],
    npm: dict[str, Any],
    allowlist: str = "",
) -> tuple[int, str]:
    monkeypatch.setattr(audit, "run_pip_audit", lambda pins: pip)
    monkeypatch.setattr(audit, "run_npm_audit", lambda folder: npm)
    lines: list[str] = []
    status = scan(
        pins=Path("pins.txt"),
        cdk_cli=Path("cli"),
        allowlist=write(tmp_path, allowlist),
        today=TODAY,
        say=lines.append,
    )
    return status, "\n".join(lines)


def test_the_scan_passes_clean_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean = {"dependencies": [{"name": "fastapi", "version": "0.121.0", "vulns": []}]}
    npm = {"auditReportVersion": 2, "vulnerabilities": {}, "metadata": {}}
    status, out = run_scan(monkeypatch, tmp_path, clean, npm)
    assert status == 0, out
    assert "the dependency scan passed" in out


def test_the_scan_fails_naming_what_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    status, out = run_scan(monkeypatch, tmp_path, PIP_AUDIT, NPM_AUDIT)
    assert status == 1
    assert "BLOCKS   python jinja2 3.1.2 GHSA-h5c8-rqwp-cp95 (also CVE-2024-22195)" in out
    assert "BLOCKS   npm aws-cdk <2.1200.0 critical GHSA-aaaa-bbbb-cccc" in out
    assert "reported npm aws-cdk <2.1150.0 high GHSA-dddd-eeee-ffff" in out


def test_the_scan_fails_on_an_expired_entry_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean: dict[str, Any] = {"dependencies": []}
    npm: dict[str, Any] = {"auditReportVersion": 2, "vulnerabilities": {}}
    expired = '[[allow]]\nid = "CVE-2020-1"\nreason = "was not reachable"\nexpires = 2026-01-01\n'
    status, out = run_scan(monkeypatch, tmp_path, clean, npm, expired)
    assert status == 1
    assert "EXPIRED" in out
    assert "CVE-2020-1 expired on 2026-01-01" in out


def test_a_scan_that_could_not_run_is_exit_2_whatever_the_other_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    status, out = run_scan(monkeypatch, tmp_path, PIP_AUDIT_SKIPPED, NPM_UNREACHABLE)
    assert status == 2
    assert "could not be audited" in out
    assert "405 Method Not Allowed" in out


def test_the_cdk_cli_package_pins_one_version_and_no_lock_is_committed() -> None:
    # tests/unit/deploy/test_workflow.py: the version is the one CI deploys with
    package = json.loads((ROOT / "deploy/cli/package.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["dependencies"]["aws-cdk"])
    assert not (ROOT / "deploy/cli/package-lock.json").exists()
    assert "package-lock=false" in (ROOT / "deploy/cli/.npmrc").read_text()
    assert all(isinstance(f, Finding) for f in npm_findings(NPM_AUDIT))
