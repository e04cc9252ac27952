"""The pages of `dvc plots show` and `dvc plots diff` draw every chart with no network, in a real browser.

The real `dvc` CLI writes the page in a temporary git copy of the project (its pipeline, .dvc/ with the
page template, and its committed plot data); headless Chromium (Debian's package) loads it with every
connection refused and the rendered Vega views are counted. A control run with DVC's own page (scripts
from a CDN) renders none, which shows the browser really is offline and the count can fail.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_pipeline_dvc import dvc, make_project, run
from tools import vendor_vega

CHROMIUM = "/usr/bin/chromium"
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No network: every proxied request goes to a closed port and every host name fails to resolve.
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# A Vega view draws into one <canvas class="marks"> (or <svg class="marks"> with the SVG renderer).
VIEW = re.compile(r'<(?:canvas|svg)\b[^>]*\bclass="marks"')


@pytest.fixture(scope="module")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: Debian's chromium package (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    repo = make_project(tmp_path_factory.mktemp("plots"), {})
    shutil.copytree(ROOT / "plots", repo / "plots", dirs_exist_ok=True)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "plot data")
    return repo


def charts_in_dvc_yaml() -> int:
    """The Vega charts dvc.yaml's `plots:` asks for (entries with a definition; bare paths are images)."""
    return sum(isinstance(entry, dict) for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"])


def rendered_views(browser: str, page: Path, profile: Path) -> int:
    """Load `page` offline in headless Chromium and count the Vega views in the DOM it ends with."""
    dom = subprocess.run(
        [browser, *OFFLINE, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    assert "</html>" in dom, f"no page dumped:\n{dom[:500]}"
    return len(VIEW.findall(dom))


@pytest.mark.parametrize("command", [("plots", "show"), ("plots", "diff", "HEAD")])
def test_every_chart_renders_offline(chromium, project, tmp_path, command):
    out = tmp_path / "page"
    dvc(project, *command, "-o", str(out))
    page = out / "index.html"
    assert charts_in_dvc_yaml() == 4  # loss, accuracy, ROC, confusion
    assert rendered_views(chromium, page, tmp_path / "profile") == charts_in_dvc_yaml()
    loaded = re.findall(r"<script[^>]*\bsrc=[^>]*>", page.read_text())
    assert not loaded, f"the page loads scripts from elsewhere: {loaded}"


def test_dvc_default_page_renders_nothing_offline(chromium, project, tmp_path):
    """The control: without the template DVC's page takes its scripts from a CDN, which is out of reach."""
    from dvc_render.html import PAGE_HTML

    default = tmp_path / "dvc_default.html"
    default.write_text(PAGE_HTML)
    out = tmp_path / "page"
    dvc(project, "plots", "show", "-o", str(out), "--html-template", str(default))
    page = out / "index.html"
    assert "cdn.jsdelivr.net/npm/vega@" in page.read_text()
    assert rendered_views(chromium, page, tmp_path / "profile") == 0


def test_committed_template_is_what_the_tool_writes_for_the_pinned_versions():
    text = (ROOT / vendor_vega.PAGE).read_text(encoding="utf8")
    scripts = dict(re.findall(r"<script>/\* (.+?) \*/\n(.*?)\n    </script>", text, flags=re.S))
    assert list(scripts) == [
        f"{name}@{version} {vendor_vega.BUILDS[name]}" for name, version in vendor_vega.VERSIONS.items()
    ]
    assert vendor_vega.page(scripts) == text
    assert "{plot_divs}" in text and "{scripts}" not in text  # no CDN tags: that is where DVC puts them
    assert (ROOT / ".dvc/config").read_text().count("html_template = plots/offline.html") == 1


@pytest.mark.parametrize("bad", ["x='</SCRIPT>'", "x='<!--'", "x='{plot_divs}'", "x='{scripts}'"])
def test_page_refuses_a_script_that_would_break_it(bad):
    with pytest.raises(ValueError, match="cannot be inlined"):
        vendor_vega.page({"lib@1 build/lib.min.js": bad})


def test_licences_follow_node_resolution_and_group_equal_texts(tmp_path):
    node_modules = tmp_path / "node_modules"

    def package(folder, name, version, dependencies=(), licence=None):
        folder.mkdir(parents=True)
        meta = {"name": name, "version": version, "license": "MIT", "dependencies": {d: "*" for d in dependencies}}
        (folder / "package.json").write_text(json.dumps(meta))
        if licence is not None:
            (folder / "LICENSE").write_text(licence)

    package(node_modules / "app", "app", "1.0.0", ["util", "yargs"], "APP TEXT")
    package(node_modules / "app/node_modules/util", "util", "2.0.0", [], "SHARED TEXT")  # conflicts with hoisted 1.0.0
    package(node_modules / "util", "util", "1.0.0", [], "SHARED TEXT")
    package(node_modules / "lib", "lib", "3.0.0", ["util"])
    package(node_modules / "yargs", "yargs", "17.0.0", [], "CLI TEXT")
    text = vendor_vega.licences(node_modules, ["app", "lib"])
    assert "util@1.0.0 (MIT)\nutil@2.0.0 (MIT)\n" + "-" * 78 + "\nSHARED TEXT\n" in text  # both versions, one text
    assert "APP TEXT" in text and text.count("SHARED TEXT") == 1 and "yargs" not in text and "CLI TEXT" not in text
    assert "lib@3.0.0 (MIT): the npm package ships no licence file" in text
