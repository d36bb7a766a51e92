"""edgekit report and tradeoff: joined tables, Markdown, the plot, the Pareto front; bad input."""

import json
from pathlib import Path

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
    # the pruned weights are compared with the baseline of their stem (the same weights here: no change)
    manifest = json.loads((out / "models/synthetic-yolov8n-pruned.onnx.json").read_text())
    baseline = json.loads((out / "models/synthetic-yolov8n.onnx.json").read_text())
    assert manifest["prune"]["baseline_sha256"] == baseline["sha256"]
    (cells,) = md_tables(md)
    named = by_model(cells)
    assert named["synthetic-yolov8n-pruned"]["vs"] == "synthetic-yolov8n.onnx"
    assert named["synthetic-yolov8n-pruned"]["mAP change"] in ("+0.0", "-0.0")
    assert named["synthetic-yolov8n"]["vs"] == named["yolov8n (untrained)"]["vs"] == "-"
    # a size column where the set has objects of that size (the synthetic shapes are medium: 32 to 96 pixels)
    counts = json.loads((out / "eval.json").read_text())["results"][0]["metrics"]["sizes"]
    assert [size for size in ("small", "medium", "large") if "mAP " + size in cells[0]] == \
        [size for size in ("small", "medium", "large") if counts[size]["instances"]]
    assert float(named["synthetic-yolov8n"]["mAP medium"]) > 0.1
    image = cv2.imread(str(out / "report.png"))
    assert image is not None and image.shape[1] > 600 and image.std() > 5

    # edgekit report re-reads the folder: same table, plus Markdown and plot where asked
    again = invoke(["report", out, "--markdown", tmp_path / "r.md", "--plot", tmp_path / "r.png"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r.md").read_text() == md and (tmp_path / "r.png").exists()
    assert "mAP50-95" in again.output and "mAP change" in again.output and "synthetic-yolov8n.onnx" in again.output


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


# --- accuracy by object size and the change against the model each row was made from (#22) ----------------
def sizes(small, medium=0.4, large=0.6, recall_small=0.3):
    """An eval result's metrics.sizes; None for a size with no instances."""
    return {"small": None if small is None else {"instances": 10, "map50_95": small, "map50": small + 0.1,
                                                 "recall": recall_small},
            "medium": {"instances": 20, "map50_95": medium, "map50": medium + 0.1, "recall": 0.5},
            "large": {"instances": 5, "map50_95": large, "map50": large + 0.1, "recall": 0.8}}


def model_docs(models, dataset="/d/ds/data.yaml"):
    """One bench and one eval document of ``models``: (file, sha256, derived_from, mAP50-95, small mAP or None,
    e2e ms); an mAP of None: benched only. Older results: derived_from and small mAP None leave the keys out."""
    def stages(e2e):
        return {s: {"mean": v} for s, v in (("preprocess", 1), ("inference", e2e - 2), ("postprocess", 1),
                                            ("e2e", e2e))}

    bench, ev = [], []
    for model, sha, parent, map50_95, small, e2e in models:
        common = {"name": model.split("/")[-1].rsplit(".", 1)[0], "model": model, "sha256": sha, "trained": True,
                  "backend": "tensorrt" if model.endswith(".engine") else "onnxruntime",
                  "precision": "int8" if "int8" in model else "fp32"}
        if parent:
            common["derived_from"] = parent
        bench.append(dict(common, fps=1000.0 / e2e, stages=stages(e2e)))
        if map50_95 is not None:
            metrics = {"map50_95": map50_95, "map50": map50_95 + 0.2, "recall": 0.5, "precision": 0.6}
            if small is not None:
                metrics["sizes"] = sizes(small)
            ev.append(dict(common, dataset=dataset, split="val", metrics=metrics))
    return [{"kind": "bench", "created_at": "2026-01-01T00:00:00", "system": SYSTEM, "results": bench},
            {"kind": "eval", "created_at": "2026-01-01T00:01:00", "system": SYSTEM, "results": ev}]


def md_tables(md):
    """Markdown tables as lists of {column: cell}, read by their own header (columns vary with the data)."""
    out, header = [], None
    for line in md.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if line.startswith("| model |"):
            header = cells
            out.append([])
        elif line.startswith("| ") and header:
            out[-1].append(dict(zip(header, cells)))
    return out


def by_model(rows):
    return {r["model"].split(" [")[0]: r for r in rows}


CHAIN = [("base.onnx", "b", None, 0.400, 0.200, 40), ("base-int8.engine", "be", "b", 0.390, 0.170, 10),
         ("base-pruned.onnx", "p", "b", 0.380, 0.150, 30), ("base-pruned-int8.engine", "pe", "p", 0.365, 0.120, 8)]


def test_report_rows_carry_size_figures_and_changes_against_their_source(tmp_path):
    folder = write_docs(tmp_path / "res", model_docs(CHAIN))
    (table,) = join_results(load_documents([str(folder)])).values()
    row = {r["model"]: r for r in table}
    assert row["base.onnx"]["map50_95_small"] == 0.2 and row["base.onnx"]["recall_small"] == 0.3
    assert row["base.onnx"]["map50_95_medium"] == 0.4 and row["base.onnx"]["recall_large"] == 0.8
    assert row["base.onnx"].get("vs") is None and row["base.onnx"].get("map50_95_change") is None
    # an engine against its ONNX; a pruned ONNX against its baseline; the pruned INT8 engine against the pruned ONNX
    got = {m: (r["vs"], r["map50_95_change"], r["map50_95_small_change"]) for m, r in row.items() if r.get("vs")}
    assert got == {"base-int8.engine": ("base.onnx", pytest.approx(-1.0), pytest.approx(-3.0)),
                   "base-pruned.onnx": ("base.onnx", pytest.approx(-2.0), pytest.approx(-5.0)),
                   "base-pruned-int8.engine": ("base-pruned.onnx", pytest.approx(-1.5), pytest.approx(-3.0))}

    md = tmp_path / "r.md"
    result = invoke(["report", folder, "--markdown", md])
    assert result.exit_code == 0, result.output
    (rows,) = md_tables(md.read_text())
    assert list(rows[0]) == ["model", "input", "pruned", "precision", "backend", "destination", "in flight",
                             "params (M)", "GFLOPs", "pre ms", "infer ms", "post ms", "e2e ms", "FPS", "dataset",
                             "mAP50-95", "mAP small", "mAP medium", "mAP large", "recall", "recall small", "vs",
                             "mAP change", "small change", "W", "mJ/frame"]
    rows = by_model(rows)
    assert rows["base-pruned-int8"]["vs"] == "base-pruned.onnx" and rows["base-pruned-int8"]["mAP change"] == "-1.5"
    assert rows["base-pruned-int8"]["small change"] == "-3.0" and rows["base-pruned-int8"]["mAP small"] == "0.120"
    assert rows["base"]["vs"] == rows["base"]["mAP change"] == "-" and rows["base"]["mAP large"] == "0.600"
    assert "- mAP change, small change: mAP50-95 of all objects and of small ones against the model in vs, in " \
           "points; vs: the model each row was made from" in md.read_text()
    # the terminal: small objects and the changes; medium/large and the empty remote/power columns only in Markdown
    header = next(line for line in result.output.splitlines() if "mAP50-95" in line)
    assert "mAP small" in header and "recall small" in header and "mAP change" in header
    assert "mAP medium" not in result.output and "destination" not in header and "mJ/frame" not in header
    assert "base-pruned.onnx" in result.output and "-1.5" in result.output


def test_report_follows_the_chain_past_a_model_without_eval_and_shows_a_missing_source_as_dash(tmp_path):
    chain = [CHAIN[0], CHAIN[1], ("base-pruned.onnx", "p", "b", None, None, 30), CHAIN[3],
             ("other-int8.engine", "oe", "gone", 0.3, 0.1, 9)]  # built from an ONNX no result mentions
    (table,) = join_results(load_documents([str(write_docs(tmp_path / "res", model_docs(chain)))])).values()
    row = {r["model"]: r for r in table}
    # the pruned ONNX was only benched: its INT8 engine is compared with the baseline it was pruned from
    assert row["base-pruned-int8.engine"]["vs"] == "base.onnx"
    assert row["base-pruned-int8.engine"]["map50_95_change"] == pytest.approx(-3.5)
    assert row["other-int8.engine"].get("vs") is None and row["base-pruned.onnx"].get("vs") is None
    rows = by_model(md_tables(markdown({"pc": table}))[0])
    assert rows["other-int8"]["vs"] == rows["other-int8"]["mAP change"] == "-"
    # a link is never followed into another dataset: the same models evaluated elsewhere are not compared
    docs = model_docs(CHAIN[:1]) + model_docs(CHAIN[1:2], dataset="/d/other/data.yaml")
    (table,) = join_results(load_documents([str(write_docs(tmp_path / "two", docs))])).values()
    assert all(r.get("vs") is None for r in table)


def test_report_baseline_compares_every_row_with_one_model(tmp_path):
    folder = write_docs(tmp_path / "res", model_docs(CHAIN))
    md = tmp_path / "r.md"
    result = invoke(["report", folder, "--baseline", "base-pruned.onnx", "--markdown", md])
    assert result.exit_code == 0, result.output
    rows = by_model(md_tables(md.read_text())[0])
    assert {m: (r["vs"], r["mAP change"], r["small change"]) for m, r in rows.items()} == {
        "base": ("base-pruned.onnx", "+2.0", "+5.0"), "base-int8": ("base-pruned.onnx", "+1.0", "+2.0"),
        "base-pruned": ("(baseline)", "-", "-"), "base-pruned-int8": ("base-pruned.onnx", "-1.5", "-3.0")}
    assert "vs: the model chosen with --baseline" in md.read_text()
    # the name as the report shows it works too, where it names one model
    assert invoke(["report", folder, "--baseline", "base-int8"]).exit_code == 0
    assert_user_error(invoke(["report", folder, "--baseline", "yolov8x"]), "--baseline yolov8x",
                      "no model of that name", "base, base-int8")


def test_report_baseline_that_is_ambiguous_or_never_evaluated_is_a_user_error(tmp_path):
    docs = model_docs([("a/m.onnx", "a", None, 0.4, None, 10), ("b/m.onnx", "b", None, 0.3, None, 12),
                       ("n.onnx", "n", None, None, None, 11)])
    folder = write_docs(tmp_path / "res", docs)
    assert_user_error(invoke(["report", folder, "--baseline", "m"]), "names 2 models", "a/m.onnx, b/m.onnx",
                      "give the file")
    result = invoke(["report", folder, "--baseline", "b/m.onnx", "--markdown", tmp_path / "r.md"])
    assert result.exit_code == 0, result.output
    rows = md_tables((tmp_path / "r.md").read_text())[0]
    assert sorted((r["model"], r["vs"], r["mAP change"]) for r in rows) == [
        ("m [a/m.onnx]", "b/m.onnx", "+10.0"), ("m [b/m.onnx]", "(baseline)", "-"), ("n", "-", "-")]
    assert_user_error(invoke(["report", folder, "--baseline", "n"]), "no eval result", "edgekit eval n")
    assert_user_error(invoke(["report", tmp_path / "res", "--baseline", "m.onnx"]), "names 2 models")


def test_report_of_older_results_without_sizes_or_lineage(tmp_path):
    """Results written before size figures and derived_from existed: the same columns as before, no new ones."""
    old = model_docs([("m.onnx", "m", None, 0.4, None, 10), ("m-int8.engine", "e", None, 0.35, None, 5)])
    folder = write_docs(tmp_path / "res", old)
    md = tmp_path / "r.md"
    result = invoke(["report", folder, "--markdown", md])
    assert result.exit_code == 0, result.output
    (rows,) = md_tables(md.read_text())
    assert tuple(rows[0]) == COLUMNS and "mAP small" not in result.output and "vs" not in md.read_text()
    # beside a newer result: its figures, "-" for the older row
    new = model_docs([("n.onnx", "n", None, 0.5, 0.25, 12), ("n-int8.engine", "ne", "n", 0.45, None, 6)])
    write_docs(tmp_path / "new", new)
    (folder / "2.json").write_text((tmp_path / "new" / "1.json").read_text())
    (folder / "3.json").write_text((tmp_path / "new" / "0.json").read_text())
    assert invoke(["report", folder, "--markdown", md]).exit_code == 0
    rows = by_model(md_tables(md.read_text())[0])
    assert rows["m"]["mAP small"] == rows["m"]["vs"] == rows["m-int8"]["mAP change"] == "-"
    assert rows["n"]["mAP small"] == "0.250" and rows["n-int8"]["mAP small"] == "-"
    assert rows["n-int8"]["mAP change"] == "-5.0" and "small change" not in rows["n-int8"]  # no row has one


def test_report_shows_an_engines_accuracy_gate_under_its_table(tmp_path):
    docs = model_docs(CHAIN[:2])
    docs[1]["results"][1]["accuracy_gate"] = {
        "data": "/d/ds/data.yaml", "candidate": {"map50_95": 0.39}, "reference": {"map50_95": 0.4},
        "drop_points": 1.0, "max_drop_points": 2.0, "passed": True}
    folder = write_docs(tmp_path / "res", docs)
    result = invoke(["report", folder, "--markdown", tmp_path / "r.md"])
    assert result.exit_code == 0, result.output
    line = "accuracy gate base-int8.engine: mAP50-95 0.390 vs ONNX 0.400 (-1.0 pts, limit 2) on ds/data.yaml"
    assert (tmp_path / "r.md").read_text().count(line) == 1 and line in result.output.replace("\n", " ")


@pytest.mark.parametrize("pruned, models, expected", [
    ("p.pt", ["yolov8n.pt"], 0),  # one baseline: the pruned weights come from it
    ("yolov8m-pruned.pt", ["yolov8n.pt", "yolov8m.pt"], 1),
    ("yolov8m-p6-pruned.pt", ["yolov8m.pt", "yolov8m-p6.pt"], 1),  # the longest stem that begins it
    ("custom.pt", ["yolov8n.pt", "yolov8m.pt"], None),  # never guessed
])
def test_tradeoff_baseline_of_pruned_weights(pruned, models, expected):
    from edgekit.host.tradeoff import baseline_of

    assert baseline_of(pruned, models) == expected


@pytest.mark.parametrize("manifest, source", [
    ({"kind": "tensorrt-engine", "sha256": "e", "onnx_sha256": "o", "pruned": True}, "o"),  # an engine: its ONNX
    ({"kind": "tensorrt-engine", "sha256": "e", "onnx_sha256": None}, None),  # built from an ONNX without manifest
    ({"kind": "onnx", "sha256": "q", "derived_from": {"file": "m-pruned.onnx", "sha256": "p"},
      "prune": {"baseline_sha256": "b"}}, "p"),  # Q/DQ of a pruned ONNX (quantize copies the prune record)
    ({"kind": "onnx", "sha256": "p", "pruned": True, "prune": {"baseline_sha256": "b", "baseline_onnx": "m.onnx"}},
     "b"),
    ({"kind": "onnx", "sha256": "p", "pruned": True, "prune": {"method": "modelopt fastnas"}}, None),  # older prune
    ({"kind": "onnx", "sha256": "m", "pruned": False, "source": {"weights": "m.pt", "sha256": "w"}}, None),
    (None, None),
])
def test_derived_from_reads_the_source_model_from_the_manifest(manifest, source):
    from edgekit.runtime.modelinfo import ModelInfo, derived_from

    assert derived_from(manifest) == source
    info = ModelInfo(path=Path("x.onnx"), names={}, imgsz=None, trained=None, weights_label="", manifest=manifest)
    assert derived_from(info) == source


def test_tradeoff_keeps_every_result_when_one_eval_fails(synthetic_model, tmp_path, monkeypatch):
    """An eval that fails late (after exports and bench) costs that model's mAP only: bench.json, the other
    models' eval, report.md are written, the table printed, and the command ends with one line naming it."""
    import edgekit.host.tradeoff as tradeoff_mod

    real = tradeoff_mod.evaluate

    def evaluate(runner, dataset, **kw):
        if runner.path.name == "yolov8n.onnx":
            raise ValueError("array of sample points is empty")
        return real(runner, dataset, **kw)

    monkeypatch.setattr(tradeoff_mod, "evaluate", evaluate)
    data, pt, _ = synthetic_model
    out = tmp_path / "to"
    result = invoke(["tradeoff", "--models", "yolov8n.yaml", pt, "--data", data, "--imgsz", 160,
                     "--iterations", 2, "--warmup", 0, "--threads", 2, "--out", out])
    assert_user_error(result, "eval failed for yolov8n.onnx (array of sample points is empty)",
                      "saved in %s" % out)
    assert len(json.loads((out / "bench.json").read_text())["results"]) == 2
    assert [r["name"] for r in json.loads((out / "eval.json").read_text())["results"]] == ["synthetic-yolov8n"]
    assert "synthetic-yolov8n" in (out / "report.md").read_text() and "edgekit report" in result.output
