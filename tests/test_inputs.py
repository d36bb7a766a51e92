"""Every input checked (issue #12): weights that must not run code, numeric options and URI parameters, a source
that keeps failing, corrupt images named, messages that point the right way, log lines that stay whole."""

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers import assert_user_error, invoke

from edgekit.errors import EdgekitError
from edgekit.video.capture import Capture, EndOfStream
from edgekit.video.sources import FrameSource


# --- weights: a .pt is a pickle ----------------------------------------------------------------------------
def evil_checkpoint(path, marker):
    """A .pt whose unpickling runs a shell command that creates ``marker`` (the classic pickle payload)."""
    code = ("import os, sys, torch\n"
            "class Evil:\n"
            "    def __reduce__(self):\n"
            "        return (os.system, ('touch %s',))\n"
            "torch.save({'model': Evil(), 'train_args': {}}, sys.argv[1])\n" % marker)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert path.exists() and not marker.exists()
    return path


def test_a_pt_that_would_run_code_is_refused_and_the_opt_in_is_explicit(synthetic_model, tmp_path):
    marker = tmp_path / "PWNED"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    result = invoke(["export", "--weights", evil, "--out", tmp_path / "out"])
    assert_user_error(result, "refused to load", "posix.system", "--trust-weights", "runs code")
    assert not marker.exists(), "unpickling ran the file's code"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # the same refusal guards the other commands that load weights
    result = invoke(["tradeoff", "--models", evil, "--data", synthetic_model[0], "--out", tmp_path / "t"])
    assert_user_error(result, "refused to load", "--trust-weights")
    assert not marker.exists()
    # --trust-weights is full unpickling: the file's code does run (that is what the opt-in says)
    result = invoke(["export", "--weights", evil, "--out", tmp_path / "out", "--trust-weights"])
    assert result.exit_code != 0 and marker.exists()


def test_checkpoints_saved_by_the_ultralytics_trainer_load_without_the_opt_in(synthetic_model, tmp_path):
    _, pt, _ = synthetic_model  # saved by ultralytics' trainer (last.pt): model, ema, optimizer, train_args
    result = invoke(["export", "--weights", pt, "--imgsz", 160, "--out", tmp_path])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "synthetic-yolov8n-160.onnx.json").read_text())
    assert manifest["trained"] is True


# --- numbers and URIs are checked when the command line is parsed ---------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["camera", "synthetic://", "--model", "m.onnx", "--width", "-5"], "--width"),
    (["camera", "synthetic://", "--model", "m.onnx", "--height", "0"], "--height"),
    (["camera", "synthetic://", "--model", "m.onnx", "--fps", "0"], "--fps"),
    (["camera", "synthetic://", "--model", "m.onnx", "--fps", "-5"], "--fps"),
    (["camera", "synthetic://", "--model", "m.onnx", "--duration", "0"], "--duration"),
    (["camera", "synthetic://", "--model", "m.onnx", "--duration", "-1"], "--duration"),
    (["camera", "synthetic://", "--model", "m.onnx", "--conf", "2"], "--conf"),
    (["camera", "synthetic://", "--model", "m.onnx", "--max-retries", "-1"], "--max-retries"),
    (["camera", "synthetic://", "--model", "m.onnx", "--wdth", "320"], "did you mean '--width'"),
    (["camera", "synthetic://?width=abc", "--model", "m.onnx"], "width=abc: not a valid whole number"),
    (["camera", "synthetic://?wdth=320", "--model", "m.onnx"], "unknown parameter 'wdth'"),
    (["camera", "synthetic://?fps=-1", "--model", "m.onnx"], "fps=-1: must be >= 0"),
    (["camera", "synthetic://?width=-5", "--model", "m.onnx"], "width=-5: must be >= 16"),
    (["camera", "csi://0?width=640", "--model", "m.onnx"], "unknown parameter 'width' for csi://"),
    (["camera", "rtsp://cam/stream?codec=vp9", "--model", "m.onnx"], "codec=vp9"),
    (["eval", "m.onnx", "--data", "d.yaml", "--conf", "-1"], "--conf"),
    (["eval", "m.onnx", "--data", "d.yaml", "--iou", "1.5"], "--iou"),
    (["compare", "a.onnx", "b.onnx", "--match-iou", "2"], "--match-iou"),
    (["bench", "m.onnx", "--iterations", "0"], "--iterations"),
    (["bench", "m.onnx", "--warmup", "-1"], "--warmup"),
    (["bench", "m.onnx", "--duration", "0"], "--duration"),
    (["bench", "m.onnx", "--batch", "0"], "--batch"),
    (["export", "--weights", "yolov8n.yaml", "--imgsz", "100"], "multiple of 32"),
    (["export", "--weights", "yolov8n.yaml", "--batch", "0"], "--batch"),
    (["build", "m.onnx", "--workspace", "-1"], "--workspace"),
    (["build", "m.onnx", "--dla", "-1"], "--dla"),
])
def test_bad_numbers_and_uri_parameters_are_one_line_errors(args, fragment):
    start = time.perf_counter()
    result = invoke(args)
    assert_user_error(result, fragment)
    assert result.exit_code == 2
    assert time.perf_counter() - start < 10  # refused when parsed, before any model or source is opened


# --- a source that keeps failing backs off and gives up -------------------------------------------------
class DeadSource(FrameSource):
    """Opens fine, never delivers a frame (like a camera that enumerates but streams nothing)."""

    def __init__(self):
        super().__init__("dead://cam", 30.0)
        self.opens = 0

    def open(self):
        super().open()
        self.opens += 1

    def read(self):
        return None


def test_a_failing_source_backs_off_and_gives_up_after_its_limit():
    source = DeadSource()
    capture = Capture(source, live=True, max_backoff=0.02, max_retries=3).start()
    with pytest.raises(EndOfStream):
        deadline = time.time() + 10
        while time.time() < deadline:
            capture.read(0.2)
    capture.stop()
    assert capture.failed and "failed 4 times in a row" in capture.failed and "--max-retries 3" in capture.failed
    assert source.opens == 4  # the first open + 3 reopens, then no more
    assert len(capture.events) <= 2 * 4 + 1  # bounded: no endless 'reopening' lines


def test_camera_on_a_source_that_only_fails_exits_non_zero_with_one_line(yolov8n_onnx, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")  # every pass over the folder yields no frame
    js = tmp_path / "camera.json"
    result = invoke(["camera", folder, "--model", yolov8n_onnx, "--loop", "--headless", "--engine-iters", 0,
                     "--max-retries", 1, "--json", js])
    assert_user_error(result, "failed 2 times in a row", "gave up", "--max-retries 1")
    (summary,) = json.loads(js.read_text())["results"]  # the summary is still saved, saying why it stopped
    assert summary["stopped_by"] == "source failed" and summary["bad_files"] == [str(folder / "broken.jpg")]


# --- corrupt inputs are named ---------------------------------------------------------------------------
def image_folder(tmp_path, good=2):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(good):
        cv2.imwrite(str(folder / ("frame%d.jpg" % i)), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return folder


def test_camera_names_undecodable_files(yolov8n_onnx, tmp_path):
    folder = image_folder(tmp_path)
    js, rec = tmp_path / "camera.json", tmp_path / "out.avi"
    result = invoke(["camera", folder, "--model", yolov8n_onnx, "--headless", "--engine-iters", 0, "--json", js,
                     "--record", rec])
    assert result.exit_code == 0, result.output
    assert "broken.jpg cannot be decoded" in result.output and "bad frames 1 (" in result.output
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["frames"] == 2 and summary["bad_frames"] == 1 and summary["bad_files"][0].endswith("broken.jpg")
    assert "wrote %s (2 frames at 30.0 FPS, --fps" % rec in result.output  # where, and at which rate


def test_bench_source_names_undecodable_files(yolov8n_onnx, tmp_path):
    folder = image_folder(tmp_path)
    result = invoke(["bench", yolov8n_onnx, "--source", folder, "--iterations", 2, "--warmup", 0, "--no-save"])
    assert result.exit_code == 0, result.output
    assert "1 of 3 images cannot be decoded and are skipped: broken.jpg" in result.output


def test_calibration_counts_only_decodable_images(tmp_path):
    from edgekit.runtime.tensorrt.calib import CalibrationSet

    folder = image_folder(tmp_path)
    calib = CalibrationSet.from_folder(folder, batch_size=1, hw=(64, 64))
    assert [p.name for p in calib.images] == ["frame0.jpg", "frame1.jpg"]
    assert calib.undecodable == [str(folder / "broken.jpg")]
    with pytest.raises(EdgekitError, match=r"2 decodable image\(s\) \(1 more cannot be decoded: broken.jpg\)"):
        CalibrationSet.from_folder(folder, batch_size=3, hw=(64, 64))


# --- messages that point the right way ------------------------------------------------------------------
def test_misspelled_model_yaml_names_the_file_given(tmp_path):
    result = invoke(["export", "--weights", "yolov8nn.yaml", "--out", tmp_path])
    assert_user_error(result, "--weights yolov8nn.yaml", "no built-in model")
    assert "'yolov8n.yaml'" not in result.output


def test_bench_of_a_folder_says_it_is_a_folder(tmp_path):
    assert_user_error(invoke(["bench", tmp_path, "--no-save"]), "is a folder", ".onnx")


def test_compare_without_detections_says_so(yolov8n_onnx, tmp_path):
    js = tmp_path / "c.json"
    result = invoke(["compare", yolov8n_onnx, yolov8n_onnx, "--conf", 1.0, "--frames", 2, "--json", js])
    assert result.exit_code == 0, result.output
    assert "no detections to compare" in result.output and "100.0%" not in result.output
    assert json.loads(js.read_text())["results"][0]["detections"]["match_rate"] is None


def test_prune_checks_the_eval_extra_before_its_slow_part(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if the eval extra were not installed
    monkeypatch.setitem(sys.modules, "pycocotools.cocoeval", None)
    result = invoke(["prune", "--weights", "yolov8n.yaml", "--data", tmp_path / "data.yaml",
                     "--cache", tmp_path / "cache", "--out", tmp_path / "out"])
    assert_user_error(result, "pycocotools", "edgekit[eval]")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()  # no search, nothing written


# --- small things a user noticed ------------------------------------------------------------------------
def test_bench_table_says_what_it_measured(yolov8n_onnx):
    result = invoke(["bench", yolov8n_onnx, "--iterations", 3, "--warmup", 1, "--threads", 1, "--no-save"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "320x320" in text and "3 timed iterations after 1 warm-up" in text and "ORT: 1 thread, spinning" in text
    assert "synthetic 1280x720 frames" in text and "FPS = batch x 1000 / mean ms" in text


def result_doc(kind, host, name, model, created):
    system = {"hostname": host, "cpu": "AMD EPYC"}
    stages = {s: {"mean": v} for s, v in (("preprocess", 1), ("inference", 9), ("postprocess", 1), ("e2e", 11))}
    return {"kind": kind, "created_at": created, "system": system, "results": [
        {"name": name, "model": model, "sha256": model, "backend": "onnxruntime", "precision": "fp32", "fps": 90.9,
         "input_shape": [1, 3, 640, 640], "stages": stages}]}


def test_report_keeps_result_sets_apart_and_tells_same_names_apart(tmp_path):
    from edgekit.report.join import join_results, load_documents

    (tmp_path / "committed").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "committed" / "b.json").write_text(json.dumps(result_doc("bench", "ci", "yolov8n", "a/yolov8n.onnx",
                                                                         "2026-01-01")))
    (tmp_path / "results" / "b.json").write_text(json.dumps(result_doc("bench", "ci", "yolov8n", "b/yolov8n.onnx",
                                                                       "2026-02-01")))
    joined = join_results(load_documents([str(tmp_path)]))
    assert sorted(joined) == ["AMD EPYC @ ci, from %s" % (tmp_path / "committed"),
                              "AMD EPYC @ ci, from %s" % (tmp_path / "results")]
    # two models of one name in one set: each row names its file
    doc = result_doc("bench", "ci", "yolov8n", "a/yolov8n.onnx", "2026-03-01")
    doc["results"].append(dict(doc["results"][0], model="b/yolov8n.onnx", sha256="other"))
    shutil.rmtree(tmp_path / "committed")
    (tmp_path / "results" / "b.json").write_text(json.dumps(doc))
    result = invoke(["report", tmp_path / "results"])
    assert result.exit_code == 0, result.output
    assert "[a/yolov8n.onnx]" in result.output and "[b/yolov8n.onnx]" in result.output
    assert "640x640" in result.output


# --- one line means one line ----------------------------------------------------------------------------
def test_messages_stay_on_one_line_at_any_width(tmp_path):
    """Through a pipe (not a terminal) rich used to wrap at 80 columns; a long path must not split a message."""
    long_path = tmp_path / ("x" * 150) / "timing.cache"
    code = ("from edgekit.log import warn, info; warn('timing cache %s cannot be read [bold]x[/bold]'); "
            "info('done with %s')" % (long_path, long_path))
    env = dict(os.environ, COLUMNS="40")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    lines = proc.stderr.splitlines()
    assert lines == ["warning: timing cache %s cannot be read [bold]x[/bold]" % long_path,
                     "done with %s" % long_path]


# --- what a new user tripped on (a trial from a clean clone, README only) ---------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["bench", "m.onnx", "--no-save", "--json", "r.json"], "--no-save writes no files"),
    (["camera", "synthetic://", "--model", "m.onnx", "--csv", "r.csv", "--no-save"], "--no-save writes no files"),
    (["demo", "--models", ""], "--models is empty"),
    (["bench", "http://127.0.0.1:9/v1/detect"], "no path"),
    (["export", "--weights", "yolov8n.yaml", "--name", "../escape"], "give a file name"),
])
def test_contradictions_and_wrong_shapes_of_input_are_refused_at_once(args, fragment):
    assert_user_error(invoke(args), fragment)


def test_export_out_is_a_file_and_name_gets_its_suffix(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_user_error(invoke(["export", "--weights", "yolov8n.yaml", "--imgsz", 64, "--out", afile]), "is a file")
    result = invoke(["export", "--weights", "yolov8n.yaml", "--imgsz", 64, "--out", tmp_path, "--name", "mine"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mine.onnx").is_file() and (tmp_path / "mine.onnx.json").is_file()


def test_a_pt_that_is_not_a_checkpoint_says_so(tmp_path):
    text = tmp_path / "text.pt"
    text.write_text("hello, I am not a checkpoint\n")
    assert_user_error(invoke(["export", "--weights", text, "--out", tmp_path / "o"]),
                      "not a readable ultralytics checkpoint")


def test_eval_inputs_that_cannot_be_evaluated(yolov8n_onnx, synthetic_model, tmp_path):
    data = synthetic_model[0]
    assert_user_error(invoke(["eval", yolov8n_onnx, "--data", data.parent, "--no-save"]), "is a folder", "data.yaml")
    assert_user_error(invoke(["eval", yolov8n_onnx, "--data", data, "--split", "vall", "--no-save"]),
                      "no split 'vall'", "train, val")
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
                                "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    assert_user_error(invoke(["eval", yolov8n_onnx, "--data", coco, "--images", tmp_path / "nope", "--no-save"]),
                      "--images", "not found")
    (tmp_path / "imgs").mkdir()
    result = invoke(["eval", yolov8n_onnx, "--data", coco, "--images", tmp_path / "imgs", "--no-save"])
    assert_user_error(result, "no image of", "1 missing images")
    assert "not found; skipped" in result.output and "cannot decode" not in result.output


def test_camera_on_a_source_with_no_usable_frame_is_an_error(yolov8n_onnx, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = invoke(["camera", broken, "--model", yolov8n_onnx, "--headless", "--engine-iters", 0, "--no-save"])
    assert_user_error(result, "gave no usable frame", "1 bad")


def test_remote_bench_where_every_request_was_refused_fails_in_one_line():
    from edgekit.serve.remote_report import failure_line

    doc = {"url": "http://127.0.0.1:8080", "steps": [
        {"mode": "closed", "concurrency": 1, "requests": 3, "ok": 0, "status_counts": {"413": 3}}]}
    line = failure_line(doc)
    assert "no request succeeded" in line and "413 x3" in line and "\n" not in line
    doc["steps"][0].update(ok=3, status_counts={"200": 3})
    assert failure_line(doc) == ""


@pytest.mark.parametrize("args, fragment", [
    (["build", "m.onnx", "--fp16", "--fp32"], "--fp16 and --fp32: give only one"),
    (["compare", "a.onnx", "b.onnx", "--data", "d.yaml", "--source", "s.mp4"], "--data and --source"),
    (["bench", "http://127.0.0.1:9", "--rate", "5", "--concurrency", "4"], "give one"),
    (["bench", "http://127.0.0.1:9", "--concurrency", "1,,4"], "--concurrency"),
    (["camera", "synthetic://?seed=1&seed=2", "--model", "m.onnx"], "seed is given twice"),
    (["report", "--plot", "p.jpg"], "plots are PNG"),
])
def test_contradictory_or_repeated_inputs_are_refused(args, fragment):
    assert_user_error(invoke(args), fragment)


def test_report_names_a_truncated_result_file(tmp_path):
    (tmp_path / "b.json").write_text('{"kind": "bench", "results": [')
    result = invoke(["report", tmp_path])
    assert_user_error(result, "no bench or eval results")
    assert "b.json is not readable JSON" in result.output


def test_serve_query_rejects_unknown_and_repeated_keys():
    pytest.importorskip("starlette")
    from starlette.datastructures import QueryParams

    from edgekit.serve.app import RequestError, parse_params

    assert parse_params(QueryParams("conf=0.5&format=roboflow"))["conf"] == 0.5
    for query, fragment in [("cnf=0.9", "unknown query parameter cnf"), ("conf=0.2&conf=0.9", "more than once")]:
        with pytest.raises(RequestError, match=fragment):
            parse_params(QueryParams(query))
