"""report.html of a real run, opened in a real headless Chromium.

A copy of the page gets a small probe script (its Content Security Policy widened by exactly
``script-src 'unsafe-inline'``; every other source stays forbidden). The probe records script
errors, failed loads and CSP violations, and after the load event writes each image's natural
size into the DOM, which ``--dump-dom`` prints. Chromium's own console log (stderr) must stay
empty too: the page has no script, so any console line is a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infbench.report.page import CSP
from report_run import make_run_dir

CHROMIUM = Path(os.environ.get("INFBENCH_CHROMIUM", "/usr/bin/chromium"))
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent: install the Debian package `chromium` (.ci/run does) "
        "to open the report in a real browser",
    ),
]
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
    "--window-size=1400,3000",
)
PROBE = """<script>
window.__problems = [];
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => {
    __problems.push(level + ": " + args.join(" "));
    original(...args);
  };
}
window.addEventListener("error", (e) => __problems.push(
  "error: " + (e.message || (e.target && (e.target.src || e.target.href)) || "unknown")), true);
document.addEventListener("securitypolicyviolation",
  (e) => __problems.push("csp: " + e.blockedURI + " " + e.violatedDirective));
window.addEventListener("load", () => {
  const images = [...document.images].map((img) => ({
    figure: img.closest("figure") ? img.closest("figure").id : "",
    width: img.naturalWidth, height: img.naturalHeight, shown: img.clientWidth, alt: img.alt,
  }));
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({images, problems: __problems});
  document.body.appendChild(out);
});
</script>"""


def probed_copy(report: Path, out: Path) -> Path:
    text = report.read_text(encoding="utf-8")
    assert CSP in text
    text = text.replace(CSP, CSP + "; script-src 'unsafe-inline'", 1)
    out.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    return out


def open_in_chromium(page: Path, profile: Path) -> tuple[dict[str, Any], list[str]]:
    """The probe's findings, and Chromium's console lines from its log."""
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, f"the probe never ran:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


def test_report_renders_in_chromium_with_every_plot_drawn(tmp_path: Path) -> None:
    run_dir, _ = make_run_dir(tmp_path)
    report = run_dir / "report.html"
    figures = re.findall(r'<figure id="([^"]+)">', report.read_text(encoding="utf-8"))
    assert len(figures) >= 6
    page = probed_copy(report, tmp_path / "probed.html")
    result, console = open_in_chromium(page, tmp_path / "profile")
    assert result["problems"] == []
    assert console == []
    images = result["images"]
    assert [image["figure"] for image in images] == figures
    for image in images:
        assert image["width"] > 0 and image["height"] > 0, image["figure"]
        assert image["shown"] > 0 and image["alt"], image["figure"]
