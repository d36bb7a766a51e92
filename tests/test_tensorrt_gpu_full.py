"""Full-size TensorRT builds, marked ``gpu_full`` (not ``gpu``): random-init YOLOv8m at 640, the size the
reference measured, one build per test. A TensorRT 8.5 build of it takes many minutes, so run one per call:
``pytest -m gpu_full -k fp16`` (needs ``make gpu-assets ARGS=--full`` on the host: the ONNX is about 100 MB).
"""

import json

import pytest

from tests.gpu_assets import load_assets, results_dir, work_dir
from tests.helpers import invoke

pytestmark = pytest.mark.gpu_full


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_full_size_yolov8m_engine_builds_and_benches(precision, tmp_path):
    """The size the reference measured: random-init YOLOv8m at 640 (speed only; make gpu-assets --full), one
    build per test: run one per call (``-m gpu_full -k fp16``), a TensorRT 8.5 build takes minutes."""
    found, missing = load_assets()
    if missing or found.full is None:
        pytest.skip("; ".join(missing) or "no yolov8m-640.onnx in the GPU assets: make gpu-assets ARGS=--full")
    args = ["--fp16"] if precision == "fp16" else ["--int8", "--calib", found.calib]
    work = work_dir() / "full"
    # no shared timing cache: on TensorRT 8.5/Hopper one build's cache failed to load in the next (Myelin error)
    result = invoke(["build", found.full, "--out", work, "--if-changed"] + args)
    assert result.exit_code == 0, result.output
    engine = next(p for p in reversed(result.output.split()) if p.endswith(".engine"))
    out = tmp_path / "bench.json"
    result = invoke(["bench", found.full, engine, "--iterations", 200, "--warmup", 50, "--json", out])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    folder = results_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("bench-yolov8m-640-%s.json" % precision)).write_text(json.dumps(doc, indent=2))
    assert [r["precision"] for r in doc["results"]] == ["fp32", precision]
