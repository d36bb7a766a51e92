"""Bad input: a one-line error and a non-zero exit, never a traceback, never a half-written file."""

import numpy as np
import pytest
from helpers import assert_user_error, invoke

from edgekit.errors import EdgekitError
from edgekit.manifest import atomic_path
from edgekit.runtime import open_runner


def make_bad_model(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "missing.onnx"
    path = tmp_path / ("model.onnx" if kind != "wrong-suffix" else "model.tflite")
    path.write_bytes({"empty": b"", "corrupt": b"\x08\x07garbage" * 100, "wrong-suffix": b"x"}[kind])
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [("missing", "not found"), ("empty", "is empty"), ("corrupt", "cannot load"),
     ("wrong-suffix", "expected an onnx model")],
)
def test_bad_model_files(tmp_path, kind, fragment):
    model = make_bad_model(tmp_path, kind)
    assert_user_error(invoke(["bench", model, "--iterations", 1, "--no-save"]), fragment)


def test_truncated_onnx(tmp_path, yolov8n_onnx):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(yolov8n_onnx.read_bytes()[: yolov8n_onnx.stat().st_size // 2])
    assert_user_error(invoke(["bench", truncated, "--no-save"]), "cannot load", "edgekit export")


def test_unknown_backend_is_rejected(yolov8n_onnx):
    result = invoke(["bench", yolov8n_onnx, "--backend", "openvino"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--backend'" in result.output


def test_tensorrt_backend_without_tensorrt_names_the_fallback(yolov8n_onnx):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert_user_error(invoke(["bench", yolov8n_onnx, "--backend", "tensorrt", "--no-save"]),
                          "tensorrt", "--backend onnxruntime")
    else:
        pytest.skip("TensorRT is installed here")


def test_wrong_input_size(yolov8n_onnx):
    with open_runner(yolov8n_onnx) as runner:
        with pytest.raises(EdgekitError, match=r"input shape \[1, 3, 640, 640\] does not match"):
            runner.infer(np.zeros((1, 3, 640, 640), np.float32))
        with pytest.raises(EdgekitError, match="expects float32"):
            runner.infer(np.zeros((1, 3, 320, 320), np.float64))


@pytest.mark.parametrize(
    "args, fragment",
    [(["--source", "no/such/dir"], "--source no/such/dir not found"),
     (["--iterations", "0"], "'--iterations': 0 is not in the range"),
     (["--duration", "-1"], "--duration")],
)
def test_bad_bench_options(yolov8n_onnx, args, fragment):
    assert_user_error(invoke(["bench", yolov8n_onnx, "--no-save", *args]), fragment)


def test_empty_source_folder(yolov8n_onnx, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    assert_user_error(invoke(["bench", yolov8n_onnx, "--no-save", "--source", tmp_path]), "no readable images")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_unreadable_manifest_is_user_error(tmp_path, yolov8n_onnx):
    model = tmp_path / "m.onnx"
    model.write_bytes(yolov8n_onnx.read_bytes())
    (tmp_path / "m.onnx.json").write_text("{not json")
    assert_user_error(invoke(["bench", model, "--no-save"]), "manifest", "unreadable")


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, tmp_path):
    """Not click's "Aborted!" with exit 1: a script can tell an interrupted run from a failed one."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("edgekit.host.quantize.quantize", interrupted)
    result = invoke(["quantize", tmp_path / "m.onnx", "--calib", tmp_path])
    assert result.exit_code == 130 and "Aborted" not in result.output
    assert_user_error(result, "stopped by Ctrl-C before", "quantize finished")
