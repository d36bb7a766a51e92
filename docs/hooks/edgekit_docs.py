"""MkDocs hooks of edgekit's site (mkdocs.yml `hooks:`): what a plain Markdown page cannot do by itself.

- ``<!-- results: NAME -->`` on a line of its own is replaced by the table ``results_tables.RENDERERS[NAME]``
  renders from the JSON committed under ``benchmarks/``: measured tables are never typed by hand. An unknown name
  or a missing file fails the build (``mkdocs build --strict`` in CI).
- The PNG plots committed under ``benchmarks/`` become part of the site at the same path, so a page links them as
  ``../benchmarks/streams-cpu2/x.png`` and the strict build checks the link.

``<!-- runnable -->`` before a fenced ``bash`` block marks it as run in CI (tests/test_docs.py); it renders as a
plain code block here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import results_tables  # noqa: E402  (beside this file)

MARKER = re.compile(r"^<!-- results: ([a-z0-9_-]+) -->[ \t]*$", re.MULTILINE)


def plots():
    """The PNG plots committed under benchmarks/, as paths from the repository root; ad-hoc results and exported
    models are not the project's measurements."""
    uris = (png.relative_to(ROOT).as_posix() for png in sorted((ROOT / "benchmarks").rglob("*.png")))
    return [uri for uri in uris if "/models/" not in uri and not uri.startswith("benchmarks/results/")]


def on_files(files, config):
    for uri in plots():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / uri)))
    return files


def on_page_markdown(markdown, page, config, files):
    def render(match):
        name = match.group(1)
        if name not in results_tables.RENDERERS:
            raise PluginError("%s: unknown results table %r (known: %s)"
                              % (page.file.src_uri, name, ", ".join(sorted(results_tables.RENDERERS))))
        try:
            return results_tables.RENDERERS[name](ROOT).strip("\n")
        except (OSError, KeyError, ValueError, IndexError, TypeError) as exc:
            raise PluginError("%s: results table %r cannot be rendered from benchmarks/: %s: %s"
                              % (page.file.src_uri, name, type(exc).__name__, exc)) from exc

    return MARKER.sub(render, markdown)
