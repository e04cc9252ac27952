"""Vendor vega, vega-lite and vega-embed into the page template of `dvc plots show` / `dvc plots diff`.

    python -m tools.vendor_vega    # needs npm and its registry; rewrites .dvc/plots/offline.html, LICENSES.txt

DVC's own page loads the three libraries from a CDN, so offline or behind a firewall its charts are blank.
.dvc/config sets `plots.html_template = plots/offline.html` (a path relative to .dvc/): that template
carries pinned copies of the three browser builds inline. Inline, not <script src=...>: DVC writes the page
into the -o folder (dvc_plots/ by default), not next to the template, so a relative path would not resolve.
dvc-render fills the template by plain text replacement of {plot_divs} (and {scripts}, {refresh_tag})
anywhere in it; the template leaves out {scripts}, which is where the CDN tags would go.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from catsdogs.pipeline.atomic_files import atomic_path

OUT_DIR = Path(".dvc/plots")
PAGE = OUT_DIR / "offline.html"
LICENSES = OUT_DIR / "LICENSES.txt"
# Pinned: the newest releases of the major versions DVC's own page loads (vega 5, vega-lite 5, vega-embed 6),
# which its vega-lite v5 plot templates are written for. In load order: each build needs the ones before it.
VERSIONS = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}
# dvc-render replaces these anywhere in the template, so an inlined script must not contain them; nor may it
# contain what would end or re-open the <script> element early.
FORBIDDEN = ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script", "<!--")
# Dependencies used only by vega-lite's command-line tool, not bundled into its browser build.
CLI_ONLY = {"yargs"}

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Written by `python -m tools.vendor_vega`: {names}, inlined so that the page needs no network
         (licences: .dvc/plots/LICENSES.txt in the project). -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def page(scripts: dict[str, str]) -> str:
    """The HTML template with each script ({"vega@5.33.1 build/vega.min.js": source}) inlined, in order.

    Raises ValueError when a script holds a FORBIDDEN string (it would break the page or be rewritten by DVC).
    """
    for name, source in scripts.items():
        for text in FORBIDDEN:
            if text in (source.lower() if text.startswith("<") else source):  # HTML tags are case-blind
                raise ValueError(f"{name} contains {text!r}: it cannot be inlined into the page template")
    tags = "\n".join(f"    <script>/* {name} */\n{source.strip()}\n    </script>" for name, source in scripts.items())
    return TEMPLATE.format(names=", ".join(name.split()[0] for name in scripts), scripts=tags)


def licence_text(package_dir: Path) -> str | None:
    """The text of the package's own LICENSE / LICENCE / COPYING file, or None when it ships none."""
    for path in sorted(package_dir.iterdir()):
        if path.is_file() and path.name.lower().startswith(("license", "licence", "copying")):
            return path.read_text(encoding="utf8").strip()
    return None


def installed(name: str, requirer: Path, node_modules: Path) -> Path:
    """Where Node finds package `name` required from the package in `requirer`: its own node_modules
    first (a version that conflicts with the hoisted one), then each enclosing one up to `node_modules`."""
    for folder in (requirer, *requirer.parents):
        if (folder / "node_modules" / name / "package.json").is_file():
            return folder / "node_modules" / name
        if folder == node_modules.parent:
            break
    raise FileNotFoundError(f"{name} (required by {requirer.name}) is not installed under {node_modules}")


def licences(node_modules: Path, roots: list[str]) -> str:
    """LICENSES.txt: every package the builds may bundle (the roots and their dependencies, transitively,
    less CLI_ONLY), packages with the same licence text grouped under it."""
    seen: dict[Path, dict] = {}
    todo = [node_modules / name for name in roots]
    while todo:
        package_dir = todo.pop()
        if package_dir in seen or package_dir.name in CLI_ONLY:
            continue
        seen[package_dir] = meta = json.loads((package_dir / "package.json").read_text(encoding="utf8"))
        todo.extend(installed(name, package_dir, node_modules) for name in meta.get("dependencies", {}))
    groups: dict[str | None, list[str]] = {}
    for package_dir, meta in sorted(seen.items(), key=lambda item: (item[1]["name"], item[1]["version"])):
        name = meta["name"]
        text = licence_text(package_dir)
        label = f"{name}@{meta['version']} ({meta.get('license', 'no licence declared')})"
        if text is None:
            repository = meta.get("repository", {})
            repository = repository.get("url", "") if isinstance(repository, dict) else repository
            label += f": the npm package ships no licence file; repository {repository or 'not given'}"
        groups.setdefault(text, []).append(label)
    header = (
        "Licences of the JavaScript inlined into offline.html: "
        + ", ".join(f"{n}@{v}" for n, v in VERSIONS.items())
        + " and the packages their builds bundle.\nWritten by `python -m tools.vendor_vega` from the npm packages.\n"
    )
    no_file = "These npm packages ship no licence file of their own; each is under the licence its package.json names."
    parts = [header]
    for text, labels in sorted(groups.items(), key=lambda group: group[0] is None):  # no-file group last
        parts.append("=" * 78 + "\n" + "\n".join(labels) + "\n" + "-" * 78 + "\n" + (text or no_file) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.vendor_vega", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in VERSIONS.items()]
        subprocess.run(
            ["npm", "install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", *specs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        node_modules = Path(tmp) / "node_modules"
        scripts = {}
        for name, version in VERSIONS.items():
            installed = json.loads((node_modules / name / "package.json").read_text(encoding="utf8"))["version"]
            if installed != version:
                raise SystemExit(f"npm installed {name}@{installed}, expected {version}")
            scripts[f"{name}@{version} {BUILDS[name]}"] = (node_modules / name / BUILDS[name]).read_text(
                encoding="utf8"
            )
        for path, text in ((PAGE, page(scripts)), (LICENSES, licences(node_modules, list(VERSIONS)))):
            with atomic_path(path) as tmp_path:
                tmp_path.write_text(text, encoding="utf8")
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
