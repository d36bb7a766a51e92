"""bench/compare --source takes camera's synthetic:// grammar; a --graph-letterbox model benches on frames of its
size by default, and a --source of another size names the size to give."""

import json

import cv2
import numpy as np
import pytest
from helpers import assert_user_error, invoke

from edgekit.bench.frames import load_frames, synthetic_frames

FAST = ["--warmup", 0, "--iterations", 2, "--no-power", "--threads", 1]


@pytest.mark.parametrize(
    "source, shape",
    [("synthetic://?width=64&height=64", (64, 64, 3)), ("synthetic://?width=16&height=16&seed=3", (16, 16, 3)),
     ("synthetic://", (720, 1280, 3))],
)
def test_synthetic_uris_make_frames(source, shape):
    frames = load_frames(source)
    assert len(frames) == 8 and all(f.shape == shape and f.dtype == np.uint8 for f in frames)


def test_default_synthetic_frames_are_unchanged():
    assert synthetic_frames(1)[0].shape == (720, 1280, 3)
    assert synthetic_frames(1)[0].tobytes() == synthetic_frames(1)[0].tobytes()


@pytest.mark.parametrize(
    "source, fragment",
    [("rtsp://cam/live", "is a live source"), ("/dev/video0", "is a live source"), ("missing.png", "synthetic://"),
     ("synthetic://?wdth=3", "unknown parameter 'wdth'")],
)
def test_sources_bench_cannot_take_say_which_it_can(source, fragment):
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match=fragment):
        load_frames(source)


def test_bench_and_compare_take_synthetic_uris(yolov8n_onnx, tmp_path):
    js = tmp_path / "b.json"
    result = invoke(["bench", yolov8n_onnx, "--source", "synthetic://?width=64&height=64", "--json", js] + FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(js.read_text())["results"][0]["source"] == "synthetic://?width=64&height=64"
    result = invoke(["compare", yolov8n_onnx, yolov8n_onnx, "--source", "synthetic://?width=64&height=48",
                     "--frames", 2, "--no-save", "--threads", 1])
    assert result.exit_code == 0, result.output


def test_letterbox_model_benches_on_frames_of_its_size(letterbox_onnx, tmp_path):
    js = tmp_path / "b.json"
    result = invoke(["bench", letterbox_onnx, "--json", js] + FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(js.read_text())["results"][0]["synthetic_hw"] == [120, 160]
    assert "synthetic 160x120 frames" in result.output


def test_letterbox_model_with_a_source_of_another_size(letterbox_onnx, tmp_path):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((240, 320, 3), np.uint8))
    assert_user_error(invoke(["bench", letterbox_onnx, "--source", image, "--no-save"] + FAST),
                      "this frame is 320x240: give --source with 160x120 frames")


def test_bench_source_with_a_broken_jpeg_has_no_library_noise(yolov8n_onnx, tmp_path):
    """libjpeg prints "Premature end of JPEG file" from C; bench names the file once, in its own words."""
    import subprocess
    import sys

    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    (folder / "good.jpg").write_bytes(jpeg.tobytes())
    (folder / "broken.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    proc = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(yolov8n_onnx), "--source", str(folder),
                           "--no-save", "--no-power", "--warmup", "0", "--iterations", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "JPEG" not in proc.stderr, proc.stderr
