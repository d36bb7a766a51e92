"""edgekit report and tradeoff: joined tables, Markdown, the plot, the Pareto front; bad input."""

import json

import cv2
import pytest
from helpers import assert_user_error, invoke

from edgekit.bench.report import input_size_text
from edgekit.report.join import join_results, load_documents, pareto_front
from edgekit.report.render import COLUMNS, markdown


@pytest.mark.parametrize("points, front", [
    ([(10, 0.5), (5, 0.4), (20, 0.6), (15, 0.45)], [1, 0, 2]),
    ([(1, 0.1), (1, 0.3), (2, 0.2)], [1]),
    ([(3, 0.9)], [0]),
])
def test_pareto_front(points, front):
    assert pareto_front(points) == front


def test_tradeoff_writes_report_table_and_plot(synthetic_model, tmp_path):
    data, pt, _ = synthetic_model
    out = tmp_path / "to"
    result = invoke(["tradeoff", "--models", "yolov8n.yaml", pt, "--pruned", pt, "--data", data, "--imgsz", 160,
                     "--iterations", 5, "--warmup", 1, "--threads", 2, "--out", out])
    assert result.exit_code == 0, result.output
    for name in ("bench.json", "eval.json", "report.md", "report.png", "models/yolov8n.onnx",
                 "models/synthetic-yolov8n-pruned.onnx.json"):
        assert (out / name).exists(), name
    md = (out / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "model" not in line]
    assert len(rows) == 3
    by_name = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[1:-1]] for r in rows}
    col = {name: i for i, name in enumerate(COLUMNS)}
    assert by_name["synthetic-yolov8n-pruned"][col["pruned"]] == "yes"
    trained = by_name["synthetic-yolov8n"]
    assert trained[col["pruned"]] == "no" and trained[col["input"]] == "160x160"
    assert float(by_name["synthetic-yolov8n"][col["mAP50-95"]]) > 0.1  # mAP50-95 of the trained model
    assert "yolov8n (untrained)" in by_name
    image = cv2.imread(str(out / "report.png"))
    assert image is not None and image.shape[1] > 600 and image.std() > 5

    # edgekit report re-reads the folder: same table, plus Markdown and plot where asked
    again = invoke(["report", out, "--markdown", tmp_path / "r.md", "--plot", tmp_path / "r.png"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r.md").read_text() == md and (tmp_path / "r.png").exists()
    assert "mAP50-95" in again.output


def test_report_joins_bench_and_eval_of_the_same_model(tmp_path):
    system = {"hostname": "nx1", "cpu": "ARMv8", "jetson": {"model": "Jetson Xavier NX", "power_mode": "MODE_20W"}}
    bench = {"kind": "bench", "created_at": "2026-01-01T00:00:00", "system": system, "results": [
        {"name": "m", "model": "m.onnx", "sha256": "abc", "backend": "onnxruntime", "precision": "fp32", "fps": 10.0,
         "trained": True, "stages": {s: {"mean": v} for s, v in
                                     (("preprocess", 1), ("inference", 90), ("postprocess", 2), ("e2e", 100))}}]}
    ev = {"kind": "eval", "created_at": "2026-01-01T00:01:00", "system": system, "results": [
        {"name": "m", "model": "m.onnx", "sha256": "abc", "backend": "onnxruntime", "precision": "fp32",
         "metrics": {"map50_95": 0.5, "map50": 0.7, "recall": 0.6, "precision": 0.8}}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(ev))
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    joined = join_results(load_documents([str(tmp_path)]))
    (device,) = joined
    assert device == "Jetson Xavier NX (MODE_20W) @ nx1"
    (row,) = joined[device]
    assert row["latency"]["e2e"] == 100 and row["map50_95"] == 0.5 and row["fps"] == 10.0


def test_report_without_results_is_a_user_error(tmp_path):
    assert_user_error(invoke(["report", tmp_path]), "no bench or eval results")
    assert_user_error(invoke(["report", tmp_path / "missing"]), "not found")


def test_tradeoff_never_swaps_precision(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text("val: x\nnames: [a]\n")
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp16", "int8",
                              "--data", data, "--out", tmp_path / "o"]), "--calib")
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp8", "--data", data]),
                      "choose from")
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # FP16 needs a TensorRT engine: without TensorRT that is an error, never an FP32 row
        assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp16",
                                  "--data", data, "--out", tmp_path / "o"]), "fp16", "--precisions fp32")
    assert not (tmp_path / "o").exists()


def test_tradeoff_with_missing_dataset_fails_before_export(tmp_path):
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--data", tmp_path / "nope.yaml",
                              "--out", tmp_path / "o"]), "not found")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("row, text", [
    ({"input_shape": [1, 3, 320, 320], "input_format": "float"}, "320x320"),
    ({"input_shape": [1, 3, 384, 640]}, "384x640"),
    ({"input_shape": [1, 320, 320, 3], "input_format": "uint8"}, "320x320"),  # --graph-preprocess
    ({"input_shape": [4, 320, 320, 3]}, "320x320"),  # an older result without input_format: read by layout
    ({"input_shape": [1, 480, 640, 3], "input_format": "uint8-letterbox"}, "480x640 frame"),
    ({"input_shape": [1, 480, 640, 3], "input_format": "uint8-letterbox", "imgsz": [320, 320]},
     "320x320 (frame 480x640)"),
    ({"input_shape": [1, 3, 320, 320], "input_format": "uint8"}, "320x320"),  # an older eval's shape
    ({"input_shape": [1, 3, "h", "w"]}, "?x?"),
    ({"input_shape": None}, "-"), ({}, "-"),
])
def test_input_column(row, text):
    assert input_size_text(row) == text


SYSTEM = {"hostname": "pc", "cpu": "EPYC"}


def bench_doc(name="m", shape=(1, 320, 320, 3), fmt="uint8", created="2026-01-01T00:00:00"):
    stages = {s: {"mean": v} for s, v in (("preprocess", 1), ("inference", 8), ("postprocess", 1), ("e2e", 10))}
    return {"kind": "bench", "created_at": created, "system": SYSTEM, "results": [
        {"name": name, "model": name + ".onnx", "sha256": name, "backend": "onnxruntime", "precision": "fp32",
         "fps": 100.0, "trained": True, "input_shape": list(shape), "input_format": fmt, "stages": stages}]}


def eval_doc(dataset, map50_95, name="m", split="val", created="2026-01-01T00:01:00", **extra):
    return {"kind": "eval", "created_at": created, "system": SYSTEM, "results": [dict(
        {"name": name, "model": name + ".onnx", "sha256": name, "backend": "onnxruntime", "precision": "fp32",
         "dataset": dataset, "split": split,
         "metrics": {"map50_95": map50_95, "map50": 0.5, "recall": 0.5, "precision": 0.5}}, **extra)]}


def write_docs(folder, docs):
    folder.mkdir(exist_ok=True)
    for i, doc in enumerate(docs):
        (folder / ("%d.json" % i)).write_text(json.dumps(doc))
    return folder


def md_rows(md):
    col = {name: i for i, name in enumerate(COLUMNS)}
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("| model")]
    return [{name: r[i] for name, i in col.items()} for r in rows]


def test_report_shows_each_dataset_of_a_model_on_its_own_row(tmp_path):
    folder = write_docs(tmp_path / "res", [bench_doc(), eval_doc("/data/ekds/data.yaml", 0.363),
                                           eval_doc("/data/ds/data.yaml", 0.320, created="2026-01-01T00:02:00"),
                                           eval_doc("/data/ds/data.yaml", 0.301, split="test")])
    (table,) = join_results(load_documents([str(folder)])).values()
    rows = md_rows(markdown({"pc": table}))
    got = sorted((r["dataset"], r["mAP50-95"], r["e2e ms"], r["model"]) for r in rows)
    assert got == [("ds/data.yaml (test)", "0.301", "10.00", "m"), ("ds/data.yaml (val)", "0.320", "10.00", "m"),
                   ("ekds/data.yaml (val)", "0.363", "10.00", "m")]
    assert {r["input"] for r in rows} == {"320x320"}
    result = invoke(["report", folder])
    assert result.exit_code == 0, result.output
    assert "ekds/data.yaml (val)" in result.output and "0.320" in result.output and "0.363" in result.output


def test_report_datasets_with_the_same_short_name_show_their_paths(tmp_path):
    folder = write_docs(tmp_path / "res", [bench_doc(), eval_doc("/a/ds/data.yaml", 0.3),
                                           eval_doc("/b/ds/data.yaml", 0.4)])
    (table,) = join_results(load_documents([str(folder)])).values()
    assert sorted(r["dataset_label"] for r in table) == ["/a/ds/data.yaml (val)", "/b/ds/data.yaml (val)"]


def test_report_input_column_keeps_the_bench_layout_after_an_older_eval(tmp_path):
    # an eval written before eval recorded its layout ([1, 3, H, W], no input_format), newer than the uint8 bench
    old_eval = eval_doc("/d/data.yaml", 0.3, input_shape=[1, 3, 320, 320])
    del old_eval["results"][0]["split"]
    folder = write_docs(tmp_path / "res", [bench_doc(), old_eval])
    result = invoke(["report", folder, "--markdown", tmp_path / "r.md"])
    assert result.exit_code == 0, result.output
    (row,) = md_rows((tmp_path / "r.md").read_text())
    assert row["input"] == "320x320" and row["dataset"] == "d/data.yaml"
    assert "320x3 " not in result.output and "3x320" not in result.output


@pytest.mark.parametrize("docs, fragment", [
    ([bench_doc()], "no eval results: the plot needs mAP"),
    ([eval_doc("/d/data.yaml", 0.3)], "the plot needs both mAP and latency"),
    ([bench_doc("a"), eval_doc("/d/data.yaml", 0.3, name="b")], "the plot needs both mAP and latency"),
])
def test_report_plot_with_nothing_to_plot_is_refused_before_writing(tmp_path, docs, fragment):
    folder = write_docs(tmp_path / "res", docs)
    png, md = tmp_path / "r.png", tmp_path / "r.md"
    assert_user_error(invoke(["report", folder, "--plot", png, "--markdown", md]), fragment)
    assert not png.exists() and not md.exists()
    assert invoke(["report", folder, "--markdown", md]).exit_code == 0 and md.exists()  # without --plot: fine


def test_report_plot_of_two_datasets(tmp_path):
    folder = write_docs(tmp_path / "res", [bench_doc(), bench_doc("n"), eval_doc("/d/ekds/data.yaml", 0.36),
                                           eval_doc("/d/ds/data.yaml", 0.32), eval_doc("/d/ds/data.yaml", 0.2, "n")])
    result = invoke(["report", folder, "--plot", tmp_path / "r.png"])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(tmp_path / "r.png"))
    assert image is not None and image.std() > 5
