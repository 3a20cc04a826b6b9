"""`longhaul audit` (`make audit`): the dependency scan that gates every deploy.

Two scans, one allowlist:

- **Python**: pip-audit over the pins the images install (requirements-runtime.txt), exactly
  as pinned (`--no-deps --disable-pip`), against PyPI's vulnerability data. pip-audit reports
  advisories without a severity (pypa/pip-audit#654), so every known vulnerability blocks;
  a package the service could not audit blocks too, so an outage never passes silently.
- **npm**: `npm audit` over the CDK CLI that CI deploys with (deploy/cli/package.json, the
  same version as ci.yml's CDK_CLI_VERSION), its lock made afresh in a temporary folder, so
  no lock file with registry addresses is ever committed. npm reports severities: critical
  advisories block, the others are printed.

An advisory blocks unless security/audit-allowlist.toml lists it (by its id or any alias),
with a reason and an expiry date; an expired entry fails the scan by itself.
docs/pipeline.md has the how and why.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "AllowEntry",
    "AuditError",
    "Finding",
    "Verdict",
    "judge",
    "load_allowlist",
    "npm_findings",
    "python_findings",
    "run_npm_audit",
    "run_pip_audit",
    "scan",
]

ALLOWLIST = Path("security/audit-allowlist.toml")
RUNTIME_PINS = Path("requirements-runtime.txt")
CDK_CLI = Path("deploy/cli")
NPM_BLOCKS = frozenset({"critical"})
SCAN_TIMEOUT_S = 600


class AuditError(RuntimeError):
    """The scan could not run, or its input is invalid: the build fails, saying why."""


class AllowEntry(BaseModel):
    """One accepted advisory: which, why, and until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9-]+$")
    reason: str = Field(min_length=10, description="why it does not touch us, or what waits")
    expires: dt.date
    package: str | None = Field(default=None, description="only in this package")

    @field_validator("reason")
    @classmethod
    def _a_real_reason(cls, value: str) -> str:
        if value.strip().lower() in {"todo", "tbd", "n/a", "none", "ignore", "false positive"}:
            raise ValueError("say why the advisory is accepted")
        return value.strip()


@dataclass(frozen=True)
class Finding:
    """One advisory against one installed package."""

    ecosystem: str  # "python" or "npm"
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    severity: str | None = None  # npm's; pip-audit reports none
    fix_versions: tuple[str, ...] = ()
    title: str = ""

    @property
    def ids(self) -> frozenset[str]:
        """The advisory's id and aliases, upper-cased (GHSA ids differ in case by source)."""
        return frozenset(i.upper() for i in (self.id, *self.aliases))

    def line(self) -> str:
        """One line a person reads in the build log."""
        severity = f" {self.severity}" if self.severity else ""
        also = f" (also {', '.join(self.aliases)})" if self.aliases else ""
        fixed = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else ""
        title = f": {self.title}" if self.title else ""
        where = f"{self.ecosystem} {self.package} {self.version}{severity}"
        return f"{where} {self.id}{also}{title}{fixed}"


@dataclass
class Verdict:
    """What the scan decided."""

    blocking: list[Finding] = field(default_factory=list)
    allowed: list[tuple[Finding, AllowEntry]] = field(default_factory=list)
    reported: list[Finding] = field(default_factory=list)  # below the blocking severity
    expired: list[AllowEntry] = field(default_factory=list)
    unused: list[AllowEntry] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No blocking advisory and no expired entry."""
        return not self.blocking and not self.expired


def load_allowlist(path: Path) -> list[AllowEntry]:
    """The allowlist's entries; an invalid file or entry fails with what is wrong."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AuditError(f"{path}: the allowlist is missing (an empty one is fine)") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"allow"}
    if unknown:
        raise AuditError(f"{path}: unknown keys {sorted(unknown)}; entries go in [[allow]]")
    entries: list[AllowEntry] = []
    for number, raw in enumerate(document.get("allow", []), start=1):
        try:
            entries.append(AllowEntry.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise AuditError(f"{path}: entry {number}: {problems}") from None
    return entries


def judge(findings: Iterable[Finding], allowlist: Sequence[AllowEntry], today: dt.date) -> Verdict:
    """Sort `findings` into blocking, allowed and reported, against `allowlist` on `today`."""
    verdict = Verdict(expired=[e for e in allowlist if e.expires < today])
    live = [e for e in allowlist if e.expires >= today]
    used: set[AllowEntry] = set()
    for finding in findings:
        entry = next(
            (
                e
                for e in live
                if e.id.upper() in finding.ids and (e.package in (None, finding.package))
            ),
            None,
        )
        if entry is not None:
            verdict.allowed.append((finding, entry))
            used.add(entry)
        elif finding.severity is None or finding.severity in NPM_BLOCKS:
            verdict.blocking.append(finding)
        else:
            verdict.reported.append(finding)
    verdict.unused = [e for e in live if e not in used]
    return verdict


def python_findings(report: dict[str, Any]) -> list[Finding]:
    """The advisories in pip-audit's JSON report; a dependency it skipped is an error."""
    dependencies = report.get("dependencies", [])
    skipped = [str(d["skip_reason"]) for d in dependencies if d.get("skip_reason")]
    if skipped:
        raise AuditError(
            f"{len(skipped)} of {len(dependencies)} pinned packages could not be audited (is "
            f"PyPI's vulnerability API reachable?), e.g. {skipped[0]}"
        )
    return [
        Finding(
            ecosystem="python",
            package=str(dependency["name"]),
            version=str(dependency["version"]),
            id=str(vuln["id"]),
            aliases=tuple(str(a) for a in vuln.get("aliases", [])),
            fix_versions=tuple(str(v) for v in vuln.get("fix_versions", [])),
        )
        for dependency in report.get("dependencies", [])
        for vuln in dependency.get("vulns", [])
    ]


def npm_findings(report: dict[str, Any]) -> list[Finding]:
    """The advisories in `npm audit --json`'s report (lockfile v2+ format)."""
    if "error" in report or "vulnerabilities" not in report:
        error = report.get("error") or {}
        detail = report.get("message") or error.get("summary") or error.get("code") or report
        raise AuditError(f"npm audit did not report: {detail}")
    findings: dict[tuple[str, str], Finding] = {}
    for name, entry in report["vulnerabilities"].items():
        for via in entry.get("via", []):
            if not isinstance(via, dict):  # the name of another vulnerable package
                continue
            url = str(via.get("url", ""))
            advisory = url.rstrip("/").rsplit("/", 1)[-1] if url else f"NPM-{via.get('source')}"
            findings[(advisory, name)] = Finding(
                ecosystem="npm",
                package=str(via.get("name", name)),
                version=str(via.get("range", entry.get("range", ""))),
                id=advisory,
                severity=str(via.get("severity", entry.get("severity", "critical"))),
                title=str(via.get("title", "")),
            )
    return sorted(findings.values(), key=lambda f: (f.package, f.id))


def run_pip_audit(pins: Path) -> dict[str, Any]:
    """pip-audit's JSON report on `pins`, each pin as it is (no resolution)."""
    if not pins.is_file():
        raise AuditError(f"{pins} does not exist: run `make pins`")
    argv = [sys.executable, "-m", "pip_audit", "--requirement", str(pins)]
    argv += ["--no-deps", "--disable-pip", "--format", "json", "--progress-spinner", "off"]
    argv += ["--desc", "off", "--aliases", "on"]
    done = _run(argv, cwd=None, what="pip-audit")
    return _json(done, "pip-audit")


def run_npm_audit(package_dir: Path) -> dict[str, Any]:
    """`npm audit`'s JSON report on the packages `package_dir/package.json` pins, with a
    lock made in a temporary folder (nothing is installed, no lock file is left)."""
    manifest = package_dir / "package.json"
    if not manifest.is_file():
        raise AuditError(f"{manifest} does not exist")
    npm = shutil.which("npm")
    if npm is None:
        raise AuditError("npm is not installed: the CDK CLI can not be audited")
    with tempfile.TemporaryDirectory(prefix="longhaul-npm-audit-") as folder:
        shutil.copy(manifest, Path(folder) / "package.json")
        quiet = ["--ignore-scripts", "--no-audit", "--no-fund", "--loglevel", "error"]
        locked = _run([npm, "install", "--package-lock-only", *quiet], cwd=folder, what="npm")
        if locked.returncode != 0:
            raise AuditError(f"npm could not lock {manifest}: {_tail(locked.stderr)}")
        return _json(_run([npm, "audit", "--json"], cwd=folder, what="npm audit"), "npm audit")


def _run(argv: list[str], *, cwd: str | None, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=SCAN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise AuditError(f"{what} took over {SCAN_TIMEOUT_S} s") from None


def _json(done: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The report `done` printed; pip-audit and npm audit exit 1 when they find something,
    so the exit status alone says nothing."""
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AuditError(
            f"{what} exited {done.returncode} without a report: {_tail(done.stderr)}"
        ) from None
    if not isinstance(report, dict):
        raise AuditError(f"{what} printed {type(report).__name__}, not a report")
    return report


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def scan(
    *,
    pins: Path | None = RUNTIME_PINS,
    cdk_cli: Path | None = CDK_CLI,
    allowlist: Path = ALLOWLIST,
    today: dt.date | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run the scans, print what they found, and return the exit status: 0 passed, 1 a
    blocking advisory or an expired allowlist entry, 2 a scan that could not run."""
    today = today or dt.date.today()
    errors: list[str] = []
    findings: list[Finding] = []
    try:
        entries = load_allowlist(allowlist)
    except AuditError as exc:
        say(f"error: {exc}")
        return 2
    scans: list[tuple[str, Callable[[], list[Finding]]]] = []
    if pins is not None:
        scans.append((f"pip-audit {pins}", lambda: python_findings(run_pip_audit(pins))))
    if cdk_cli is not None:
        scans.append((f"npm audit {cdk_cli}", lambda: npm_findings(run_npm_audit(cdk_cli))))
    for name, run in scans:
        try:
            found = run()
        except AuditError as exc:
            errors.append(f"{name}: {exc}")
            continue
        say(f"{name}: {len(found)} advisor{'y' if len(found) == 1 else 'ies'}")
        findings += found
    verdict = judge(findings, entries, today)
    for finding in verdict.blocking:
        say(f"BLOCKS   {finding.line()}")
    for finding, entry in verdict.allowed:
        say(f"allowed  {finding.line()} (until {entry.expires}: {entry.reason})")
    for finding in verdict.reported:
        say(f"reported {finding.line()} (below critical)")
    for entry in verdict.expired:
        say(
            f"EXPIRED  {allowlist}: {entry.id} expired on {entry.expires}: fix it, or renew "
            f"the entry with a new reason"
        )
    if findings or not errors:
        for entry in verdict.unused:
            say(f"unused   {allowlist}: {entry.id} matches nothing now; remove it")
    for error in errors:
        say(f"error: {error}")
    if errors:
        return 2
    if not verdict.passed:
        say(
            "the dependency scan failed: upgrade the package (make pins), or allowlist the "
            "advisory with a reason and an expiry (docs/pipeline.md)"
        )
        return 1
    say("the dependency scan passed")
    return 0
