"""The documentation site (mkdocs.yml, docs/): it builds with --strict, its reference covers every command and
option of the CLI, the examples marked runnable run on this CPU as a new user would type them, and the README's
headline figures are the ones rendered from the JSON under benchmarks/.

Under `make test` (EDGEKIT_REQUIRE_DOCS=1) a missing mkdocs is a failure, not a skip.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
RUNNABLE = re.compile(r"^<!-- runnable -->\n```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
README_MAX_LINES = 250


def _mkdocs_or_skip():
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocs_click  # noqa: F401
    except ImportError as exc:
        if os.environ.get("EDGEKIT_REQUIRE_DOCS"):
            raise
        pytest.skip("docs extra not installed (pip install -e '.[docs]'): %s" % exc)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _mkdocs_or_skip()
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + proc.stderr[-4000:]
    return out


def page_text(site: Path, rel: str) -> str:
    """The visible text of a built page's article, whitespace collapsed."""
    raw = (site / rel).read_text(encoding="utf-8")
    start = raw.find("<article")
    body = raw[start:raw.find("</article>", start)] if start >= 0 else raw
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


# --- the reference: every command and option, on its page --------------------------------------------------------

def commands():
    """(path, command) for every visible command and subcommand of `edgekit`, and `edgekit bench URL`."""
    from edgekit.cli import cli
    from edgekit.commands.serve import remote_bench

    def walk(group, path):
        for name in sorted(group.commands):
            cmd = group.commands[name]
            if cmd.hidden:
                continue
            yield path + [name], cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, path + [name])

    yield from walk(cli, [])
    yield ["bench", "URL"], remote_bench


def option_names(cmd: click.Command):
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            yield from param.opts
            yield from param.secondary_opts


def usage_block(text: str, prog: str) -> str:
    """The part of a page that mkdocs-click rendered for PROG: from its usage line to the next one."""
    blocks = text.split(" Usage: ")
    for block in blocks[1:]:
        if block.startswith(prog + " [OPTIONS]"):  # click's usage line; "edgekit bench" is not "edgekit bench URL"
            return block
    return ""


def test_every_command_and_option_is_on_its_page(site):
    missing = []
    for path, cmd in commands():
        page = "commands/%s.html" % path[0]
        if not (site / page).exists():
            missing.append("edgekit %s: no page docs/commands/%s.md" % (path[0], path[0]))
            continue
        prog = "edgekit " + " ".join(path)
        block = usage_block(page_text(site, page), prog)
        if not block:
            missing.append("%s: no generated reference on %s (a ::: mkdocs-click block)" % (prog, page))
            continue
        for opt in option_names(cmd):
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), block):
                missing.append("%s %s: not in the reference on %s" % (prog, opt, page))
    assert not missing, "\n".join(missing)


def test_commands_index_lists_every_command(site):
    from edgekit.cli import cli

    text = page_text(site, "commands/index.html")
    absent = [name for name, cmd in cli.commands.items() if not cmd.hidden and name not in text]
    assert not absent, "docs/commands/index.md does not name: %s" % ", ".join(absent)


def test_help_of_every_page_is_the_clis_own(site):
    """What a page shows is `--help` itself: the text of `edgekit bench --help` appears on the bench page."""
    from click.testing import CliRunner

    from edgekit.cli import cli

    out = CliRunner().invoke(cli, ["bench", "--help"], prog_name="edgekit", terminal_width=80).output
    first_option = next(line.strip() for line in out.splitlines() if line.strip().startswith("--backend"))
    assert re.sub(r"\s+", " ", first_option) in page_text(site, "commands/bench.html")


# --- the site opened from the disk, as the README says, in a real browser -----------------------------------

def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not chromium() and not os.environ.get("CI"), reason="Chromium not installed (apt install chromium)")
def test_site_works_from_the_disk_without_internet(site):
    """file:///.../site/index.html: navigation and search work, and the page asks nothing of the internet (a field
    laptop has none): fonts are the system's, the search worker's shim is vendored."""
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu",
                                                                      "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else outside.append(r.url))
        page.goto((site / "index.html").as_uri())
        page.click("text=INT8 on a Jetson >> nth=0")
        assert page.url.endswith("guides/int8-on-jetson.html")
        page.wait_for_load_state("load")
        page.fill("input.md-search__input", "calibration")  # the header's search box (desktop width)
        page.wait_for_selector(".md-search-result__item", timeout=30000)
        browser.close()
    assert not outside, "the site reaches for the internet: %s" % outside[:5]


# --- measured tables come from benchmarks/ ---------------------------------------------------------------------

def hooks_module(name: str):
    """A module of docs/hooks/ (the site's hook and its table renderers), imported as mkdocs imports them."""
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOCS / "hooks"))


def results_tables():
    return hooks_module("results_tables")


def test_every_results_table_renders_and_is_used():
    tables = results_tables()
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    used = set(re.findall(r"<!-- results: ([a-z0-9_-]+) -->", pages))
    assert used <= set(tables.RENDERERS), "pages ask for tables nobody renders: %s" % (used - set(tables.RENDERERS))
    assert set(tables.RENDERERS) <= used, "rendered but on no page: %s" % (set(tables.RENDERERS) - used)
    for name, render in tables.RENDERERS.items():
        text = render(ROOT)
        if name == "gpu-check" and not list((ROOT / "benchmarks").glob("gpu-check-*")):
            assert text == hooks_module("tables_gpu").NOT_YET  # no GPU run committed yet: no table to show
            continue
        rows = [line for line in text.splitlines() if line.startswith("|")]
        assert len(rows) >= 3, "%s renders no table rows:\n%s" % (name, text)


# --- the GPU check's committed results folders (docs/results/gpu.md, "Measured on a GPU") ------------------------

GPU_DEVICE = {"python": "3.9.18", "numpy": "1.24.4", "tensorrt": "8.5.3.1", "pycuda": "2024.1", "gpus": 1,
              "gpu": "NVIDIA H100 80GB HBM3", "sm": "9.0", "cuda_driver_api": 12080, "cuda_python": True,
              "nvidia_smi": {"name": "NVIDIA H100 80GB HBM3", "driver": "580.95.05", "memory": "81559 MiB"}}


def gpu_stages(**medians):
    return {stage: {"median": ms, "p99": round(ms * 1.5, 4)} for stage, ms in medians.items()}


def gpu_records():
    """What tests/test_tensorrt_gpu.py reports for the FP16 engine (records/*.json), in the shapes it writes."""
    ort = {"name": "m", "backend": "onnxruntime", "precision": "fp32", "device": "cpu", "fps": 212.4,
           "config": {}, "stages": gpu_stages(preprocess=0.41, inference=3.872, postprocess=0.3, e2e=4.712)}
    trt = {"name": "m-fp16", "backend": "tensorrt", "precision": "fp16", "device": "cuda:0", "fps": 1187.3,
           "config": {"cuda_graph": False},
           "stages": gpu_stages(h2d=0.0213, compute=0.3187, d2h=0.0121, e2e=0.8342)}
    graph = dict(trt, fps=1392.8, config={"cuda_graph": True}, stages=gpu_stages(e2e=0.7119))
    return {"bench-fp16": {"results": [ort, trt]}, "bench-fp16-graph": {"results": [graph]},
            "manifest-fp16": {"build_seconds": {"total": 87.6}},
            "agreement-fp16": {"frames": 32, "detections": {"a": 41, "b": 41, "matched": 41, "match_rate": 1.0,
                                                            "mean_iou": 0.9987, "class_agreement": 1.0}}}


def write_gpu_check(folder: Path, started_at: str, device=GPU_DEVICE):
    """A results folder as jetson/gpu_check.py writes it (its own Check.save), of a run that proved FP16 and whose
    Q/DQ build timed out."""
    from tests.helpers import jetson_script

    gpu_check = jetson_script("gpu_check")
    check = gpu_check.Check(folder, budget=450, python=sys.executable)
    check.results.update(started_at=started_at, device=device, records=gpu_records())
    check.results["bench"] = gpu_check.bench_rows(check.results["records"])
    check.results["tests"] = [{"test": "test_fp16_engine_matches_onnxruntime", "outcome": "passed", "seconds": 3.5,
                               "message": ""}]
    for name, status, seconds in [("probe", "ok", 0.4), ("build-fp16", "ok", 88.1), ("tests-fp16", "ok", 31.0)]:
        check._keep({"name": name, "status": status, "seconds": seconds})
    check._keep({"name": "build-qdq", "status": "timed out", "seconds": 240.0, "last_line": "[TRT] building"})
    return json.loads((folder / "results.json").read_text())


def test_gpu_check_section_says_not_yet_until_a_results_folder_is_committed():
    text = results_tables().RENDERERS["gpu-check"](ROOT)
    committed = sorted(p.name for p in (ROOT / "benchmarks").glob("gpu-check-*"))
    page = (DOCS / "results" / "gpu.md").read_text(encoding="utf-8")
    if committed:  # a GPU run is committed: its folder is on the page, and the page no longer says there is none
        assert all(name in text for name in committed) and "Not yet" not in text
        assert "No engine has been built on a GPU yet" not in page
        assert "No TensorRT engine has been built or run by edgekit's code on a GPU yet" not in readme()
        return
    assert "no results folder of the GPU check is committed" in text
    assert "no engine has been built or run by edgekit on a GPU" in text
    assert not any(line.startswith(("|", "#")) for line in text.splitlines())  # no table, no heading: no numbers
    section = page[page.index("\n## Measured on a GPU\n"):]
    assert "<!-- results: gpu-check -->" in section[:section.index("\n## ", 1)]


def test_gpu_check_section_renders_a_committed_results_folder(tmp_path):
    folder = tmp_path / "benchmarks" / "gpu-check-h100-580-trt8.5.3.1"
    results = write_gpu_check(folder, "2026-12-05T10:00:00Z")
    text = results_tables().RENDERERS["gpu-check"](tmp_path)
    lines = text.splitlines()
    assert lines[0] == ("### gpu-check-h100-580-trt8.5.3.1: NVIDIA H100 80GB HBM3, driver 580.95.05, "
                        "TensorRT 8.5.3.1")
    assert not any(line.startswith("#") for line in lines[1:])  # the summary's own heading would repeat it
    # the rows the check's own summary.md has, every number from results.json
    assert "| ONNX Runtime, cpu | - | - | 3.872 | - | 4.712 | 7.068 | 212.4 | - | reference |" in lines
    assert ("| FP16 | 88 | 0.021 | 0.319 | 0.012 | 0.834 | 1.251 | 1187.3 | 0.712 ms, 1392.8 | 41 of 41 matched "
            "(rate 1.0), IoU 0.9987, class 1.0 |") in lines
    assert "- INT8 Q/DQ (edgekit quantize): build-qdq timed out: [TRT] building" in lines
    from tests.helpers import jetson_script

    summary_markdown = jetson_script("gpu_report").summary_markdown

    own = [line for line in summary_markdown(results).splitlines() if line.startswith(("|", "- "))]
    assert own and [line for line in lines if line.startswith(("|", "- "))] == own
    not_proven = lines.index("Not proven in this run:")
    assert lines[not_proven + 1] == "" and lines[not_proven + 2].startswith("- ")  # a Markdown list, not a paragraph


def test_gpu_check_section_shows_the_newest_run_first_and_refuses_a_partial_folder(tmp_path):
    benchmarks = tmp_path / "benchmarks"
    write_gpu_check(benchmarks / "gpu-check-h100-580.95-trt8.5.3.1", "2026-11-02T09:00:00Z")
    write_gpu_check(benchmarks / "gpu-check-a100-570.86-trt8.6.1", "2026-12-24T18:30:00Z",
                    dict(GPU_DEVICE, gpu="NVIDIA A100-SXM4-40GB", tensorrt="8.6.1",
                         nvidia_smi={"name": "NVIDIA A100-SXM4-40GB", "driver": "570.86.15"}))
    text = results_tables().RENDERERS["gpu-check"](tmp_path)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "### gpu-check-a100-570.86-trt8.6.1: NVIDIA A100-SXM4-40GB, driver 570.86.15, TensorRT 8.6.1",
        "### gpu-check-h100-580.95-trt8.5.3.1: NVIDIA H100 80GB HBM3, driver 580.95.05, TensorRT 8.5.3.1"]
    (benchmarks / "gpu-check-t4-535-trt8.5.3.1").mkdir()  # a folder committed without its results.json
    with pytest.raises(ValueError, match="gpu-check-t4-535-trt8.5.3.1 has no results.json"):
        results_tables().RENDERERS["gpu-check"](tmp_path)
    (benchmarks / "gpu-check-t4-535-trt8.5.3.1" / "results.json").write_text('{"kind": "edgekit-bench"}')
    with pytest.raises(ValueError, match="not a GPU check's results.json"):
        results_tables().RENDERERS["gpu-check"](tmp_path)
    # a run without a GPU (every test skipped) proves nothing: committing it is refused, not shown as a result
    skipped = [{"test": "test_fp16_engine_matches_onnxruntime", "outcome": "skipped"}]
    (benchmarks / "gpu-check-t4-535-trt8.5.3.1" / "results.json").write_text(json.dumps(
        {"kind": "edgekit-gpu-check", "tests": skipped}))
    with pytest.raises(ValueError, match="no test passed in that run"):
        results_tables().RENDERERS["gpu-check"](tmp_path)


def test_gpu_check_section_is_valid_markdown(tmp_path):
    """The section as the site's Markdown reads it: a table per run, the unproven engines as a list."""
    _mkdocs_or_skip()
    import markdown

    write_gpu_check(tmp_path / "benchmarks" / "gpu-check-h100-580-trt8.5.3.1", "2026-12-05T10:00:00Z")
    out = markdown.markdown(results_tables().RENDERERS["gpu-check"](tmp_path), extensions=["tables", "toc"])
    assert out.count("<table>") == 1 and out.count("<tr>") == 3 and "<h3" in out
    assert "<li>INT8 Q/DQ (edgekit quantize): build-qdq timed out: [TRT] building</li>" in out


def test_every_committed_plot_is_on_a_page(site):
    plots = hooks_module("edgekit_docs").plots()  # the plots the site copies in
    assert plots, "no committed plots found under benchmarks/"
    pages = "\n".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    absent = [plot for plot in plots if plot not in pages]
    assert not absent, "committed plots shown on no page: %s" % absent


# --- the README is a front page whose figures come from benchmarks/ -------------------------------------------

def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_a_front_page_linking_into_the_docs():
    text = readme()
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10, "the README should link into the docs"
    for target in ("docs/guides/int8-on-jetson.md", "docs/guides/cameras.md", "docs/guides/fleet.md",
                   "docs/measuring/index.md"):
        assert target in links, "the README does not link %s" % target
    broken = [link for link in links if not (ROOT / link).is_file()]
    assert not broken, "README links to missing pages: %s" % broken


def test_short_readmes_link_into_the_docs():
    for rel in ("jetson/README.md", "engines/README.md"):
        path = ROOT / rel
        text = path.read_text(encoding="utf-8")
        links = [link for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "docs/" in link]
        assert links, "%s does not link into docs/" % rel
        broken = [link for link in links if not (path.parent / link).resolve().is_file()]
        assert not broken, "%s links to missing pages: %s" % (rel, broken)


def test_readme_headline_figures_are_the_measured_ones():
    figures = results_tables().headline(ROOT)
    text = readme()
    expected = readme_figures(figures)
    absent = [phrase for phrase in expected if phrase not in text]
    assert not absent, "README's headline figures differ from benchmarks/ (render them again): %s" % absent


def readme_figures(f) -> list:
    """The phrases of the README's headline that carry a measured figure, formatted from benchmarks/."""
    return [
        "%.1f FPS" % f["yolov8n_cpu2_fps"],
        "%.1f FPS" % f["yolov8m_cpu2_fps"],
        "%.1f ms" % f["serve_overhead_ms"],
        "keeps %.2fx of the bench's end-to-end FPS" % f["camera_vs_bench_ratio"],
        "%.3fx the wall time of" % f["bench_vs_ultralytics_ratio"],
        "cut FLOPs %.0f%% and inference %.0f%%" % (-f["prune_flops_change_pct"], -f["prune_latency_change_pct"]),
    ]


# --- runnable examples -------------------------------------------------------------------------------------------

def runnable_pages():
    pages = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    return [p for p in pages if RUNNABLE.search(p.read_text(encoding="utf-8"))]


def test_the_quick_starts_are_runnable():
    names = {p.relative_to(ROOT).as_posix() for p in runnable_pages()}
    assert {"README.md", "docs/start/pc.md"} <= names


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_examples_run(page, tmp_path):
    """Each page's runnable blocks, in order, in one fresh folder, as a user types them (bash -euo pipefail)."""
    blocks = RUNNABLE.findall(page.read_text(encoding="utf-8"))
    script = "\n".join(blocks)
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")), YOLO_OFFLINE="1",
               EDGEKIT_HOME=str(tmp_path / "edgekit-home"), MPLBACKEND="Agg")
    env.pop("DISPLAY", None)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, "%s: its runnable examples failed (exit %d):\n%s\n--- output ---\n%s%s" % (
        page.name, proc.returncode, script, proc.stdout[-3000:], proc.stderr[-3000:])
