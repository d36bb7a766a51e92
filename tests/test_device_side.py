"""The device side runs without torch/ultralytics (a Jetson has neither)."""

import subprocess
import sys
import textwrap

# Run the CLI in a fresh interpreter where importing torch or ultralytics fails, as on a Jetson.
BLOCKED = textwrap.dedent(
    """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "ultralytics"):
                raise ImportError("blocked: %s is not on the device" % name)
    sys.meta_path.insert(0, Block())
    from edgekit.cli import main
    sys.argv = ["edgekit"] + sys.argv[1:]
    try:
        main()
    finally:
        assert not any(m.split(".")[0] in ("torch", "ultralytics") for m in sys.modules), "torch imported"
    """
)


def run_blocked(*args):
    return subprocess.run([sys.executable, "-c", BLOCKED, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_help_and_bench_work_without_torch(yolov8n_onnx, tmp_path):
    assert run_blocked("--help").returncode == 0
    out = run_blocked("bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2, "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "e2e" in out.stdout and (tmp_path / "r.json").exists()


def test_export_without_torch_says_what_to_install(tmp_path):
    out = run_blocked("export", "--weights", "yolov8n.yaml", "--out", tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "edgekit[export]" in out.stderr


def test_eval_compare_report_work_without_torch(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    results = tmp_path / "results"
    out = run_blocked("eval", model, "--data", data, "--json", results / "eval.json")
    assert out.returncode == 0, out.stderr
    assert "mAP50-95" in out.stdout
    out = run_blocked("compare", model, model, "--data", data, "--frames", 3, "--no-save")
    assert out.returncode == 0 and "identical outputs" in out.stdout, out.stderr
    out = run_blocked("bench", model, "--warmup", 0, "--iterations", 2, "--json", results / "bench.json")
    assert out.returncode == 0, out.stderr
    out = run_blocked("report", results, "--markdown", tmp_path / "r.md")
    assert out.returncode == 0, out.stderr
    assert "synthetic-yolov8n-160" in (tmp_path / "r.md").read_text()


# The device runtime sits below everything that measures or serves: it may import vision (preprocessing, image
# files), manifest, errors and log, never bench, eval, camera, serve, report, host or the commands.
UPPER = ("edgekit.bench", "edgekit.eval", "edgekit.camera", "edgekit.serve", "edgekit.report", "edgekit.host",
         "edgekit.commands", "edgekit.cli", "edgekit.video")


def test_runtime_never_imports_the_layers_above_it():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "edgekit" / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += ["%s imports %s" % (path.relative_to(root), n) for n in names
                      if any(n == u or n.startswith(u + ".") for u in UPPER)]
    assert found == []
