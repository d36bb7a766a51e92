"""jetson/ansible/rollout.yml and rollback.yml for real on a loopback fleet.

Each box is a home folder on this machine with its own model store and a real ``edgekit serve HOME/store/current``
run by supervisord, restarted with supervisorctl: "good" over the local connection, "viassh" over a loopback sshd
(tests/test_jetson.py's ssh_host; needs root and openssh-server, else "good2", local), "slow" whose speed floor
model B cannot reach, "stale" whose restart does not restart (health sees the old model: rolled back), "broken" (no
edgekit) and "gone" (unreachable). Roll-outs: model A everywhere; B with a floor the canary cannot meet (the canary
stops it); --check for B; B killed -9 half-way and run again; rollback.yml --check and for real for a box with a
previous model and one without. The controller's own checks (no model file, a manifest for other bytes) run on a
one-box inventory, without services."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgekit.manifest import read_manifest, sha256_file, write_json_atomic
from tests.helpers import assert_user_error, invoke
from tests.test_jetson import PLAYBOOK_DIR, recap, ssh_host  # noqa: F401 (ssh_host: the fixture)

BIN = Path(sys.executable).parent
needs_tools = pytest.mark.skipif(not (BIN / "ansible-playbook").exists() or not (BIN / "supervisord").exists(),
                                 reason="ansible-core and supervisor not installed (dev extra)")
GOOD_RATIO = 0.3  # the same network twice: the ratio is ~1, far above this even on a busy machine
ONE_BATCH = json.dumps({"edgekit_serial": ["100%"]})
GATE_ARGS = "--iterations 4 --rounds 2 --warmup 1 --threads 1 --source synthetic://?width=320&height=240"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_models(onnx_path, folder):
    """Model A (the test's ONNX) and model B (the same network with one more metadata entry: another sha256),
    each with its manifest."""
    import onnx

    folder.mkdir()
    models = {}
    for name, version in (("model-a", "1"), ("model-b", "2")):
        path = folder / ("%s.onnx" % name)
        graph = onnx.load(str(onnx_path))
        graph.metadata_props.add(key="edgekit_test_model", value=name)
        onnx.save(graph, str(path))
        manifest = dict(read_manifest(onnx_path), file=path.name, sha256=sha256_file(path), version=version)
        write_json_atomic(str(path) + ".json", manifest)
        models[name] = path
    return models


class Box:
    """A box on this machine: its edgekit home and a supervisord that runs edgekit serve HOME/store/current."""

    def __init__(self, root: Path, name: str):
        self.name, self.home, self.port = name, root / name, free_port()
        self.home.mkdir(parents=True)
        self.conf = self.home / "supervisord.conf"
        self.conf.write_text("\n".join([
            "[unix_http_server]", "file=%s/supervisor.sock" % self.home,
            "[supervisord]", "logfile=%s/supervisord.log" % self.home, "pidfile=%s/supervisord.pid" % self.home,
            "directory=%s" % self.home,
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]", "serverurl=unix://%s/supervisor.sock" % self.home,
            "[program:edgekit-serve]",
            "command=%s serve %s/store/current --port %d --threads 1 --workers 1 --warmup 1 --drain-timeout 2"
            % (BIN / "edgekit", self.home, self.port),
            "autostart=true", "startsecs=1", "startretries=2", "stopwaitsecs=10", "redirect_stderr=true",
            "stdout_logfile=%s/serve.log" % self.home, ""]))
        subprocess.run([str(BIN / "supervisord"), "-c", str(self.conf)], check=True)

    @property
    def restart(self) -> str:
        return "%s -c %s restart edgekit-serve" % (BIN / "supervisorctl", self.conf)

    def vars(self, **more):
        return dict({"edgekit_home": str(self.home), "edgekit_health_url": "http://127.0.0.1:%d" % self.port,
                     "edgekit_restart_command": self.restart, "ansible_connection": "local"}, **more)

    def current(self):
        """The sha256 of the model the store's current run holds (None: no current run)."""
        link = self.home / "store" / "current"
        if not link.exists():
            return None
        return json.loads((link / "run.json").read_text())["onnx_sha256"]

    def serving(self):
        """The sha256 of the model file edgekit serve runs, as its /readyz says (None: not answering)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.port, timeout=2) as answer:
                return json.loads(answer.read())["model"]["sha256"]
        except OSError:
            return None

    def stop(self):
        subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.conf), "shutdown"], capture_output=True)


@pytest.fixture
def fleet(yolov8n_onnx, tmp_path, ssh_host):  # noqa: F811 (the fixture imported above)
    models = make_models(yolov8n_onnx, tmp_path / "models")
    second = "viassh" if ssh_host else "good2"  # the second canary batch: a good box, over SSH where it can be
    boxes = {name: Box(tmp_path / "boxes", name) for name in ("good", second, "slow", "stale")}
    hosts = {"good": boxes["good"].vars(),
             second: dict(boxes[second].vars(), **(ssh_host or {})),  # over real SSH, like a box on the network
             "slow": boxes["slow"].vars(edgekit_min_speed_ratio=50),  # B is never 50x faster than A
             "stale": boxes["stale"].vars(edgekit_health_timeout=6),
             "broken": {"edgekit_home": str(tmp_path / "boxes" / "broken"), "edgekit_bin": "/nonexistent/edgekit",
                        "ansible_connection": "local"},
             "gone": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port(),
                      "edgekit_home": "/nonexistent"}}  # nothing listens there: unreachable
    results = tmp_path / "rollout"
    inventory = {"fleet": {"hosts": hosts, "vars": {
        "ansible_python_interpreter": sys.executable, "edgekit_bin": str(BIN / "edgekit"),
        "edgekit_backend": "onnxruntime", "edgekit_min_speed_ratio": GOOD_RATIO, "edgekit_gate_args": GATE_ARGS,
        "edgekit_health_timeout": 40, "edgekit_rollout_results": str(results)}}}
    yield {"models": models, "boxes": boxes, "inventory": inventory, "results": results, "tmp": tmp_path}
    for box in boxes.values():
        box.stop()


def command(fleet, playbook, *args):
    inventory = fleet["tmp"] / "inventory.json"
    inventory.write_text(json.dumps(fleet["inventory"]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(fleet["tmp"] / "ansible-tmp"),
               ANSIBLE_HOME=str(fleet["tmp"] / "ansible-home"), ANSIBLE_PIPELINING="1")
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook,
            "-e", "edgekit_controller_bin=%s" % (BIN / "edgekit")] + [str(a) for a in args]
    return argv, env


def playbook(fleet, name, *args):
    argv, env = command(fleet, name, *args)
    done = subprocess.run(argv, cwd=str(PLAYBOOK_DIR), capture_output=True, text=True, env=env, timeout=400)
    logs = sorted(fleet["tmp"].glob("ansible-*.log"))
    (fleet["tmp"] / ("ansible-%d.log" % len(logs))).write_text(done.stdout + done.stderr)  # for a failed test
    out = done.stdout + done.stderr
    # a failed edgekit command is reported by its own words, never by a changed_when that could not parse it
    assert "filter plugin" not in out and "Expecting value" not in out, out
    return done.returncode, out


def incoming_left(box):
    """What a roll-out left in the box's HOME/incoming (copies, gate records): nothing, whatever happened."""
    return sorted(p.name for p in (box.home / "incoming").iterdir()) if (box.home / "incoming").is_dir() else []


def rollout(fleet, model, *args):
    return playbook(fleet, "rollout.yml", "-e", "edgekit_model=%s" % fleet["models"][model], *args)


def summary(folder):
    doc = json.loads((folder / "summary.json").read_text())
    return {row["host"]: row for row in doc["rows"]}


@needs_tools
def test_rollout_canary_gates_rollback_on_a_loopback_fleet(fleet):
    boxes, results = fleet["boxes"], fleet["results"]
    sha = {name: sha256_file(path) for name, path in fleet["models"].items()}
    up = [name for name in boxes]  # the boxes whose service runs

    # 1. model A on every box at once (a first install needs no canary), with an evaluation set, which onnxruntime
    # does not need (not copied: its accuracy gate is skipped); the broken box fails, the others switch
    evalset = fleet["tmp"] / "evalset"
    (evalset / "images").mkdir(parents=True)
    (evalset / "data.yaml").write_text("path: .\nval: images\nnames: {0: shape}\n")
    code, out = rollout(fleet, "model-a", "-e", ONE_BATCH, "-e", "edgekit_eval=%s" % evalset)
    rows = summary(results)
    assert code != 0 and recap(out, "broken")["failed"] == "1", out
    assert {h: rows[h]["result"] for h in rows} == dict({h: "switched" for h in up}, broken="failed", gone="failed")
    assert "edgekit not found at /nonexistent/edgekit" in rows["broken"]["why"]
    assert rows["gone"]["why"].startswith("Reach it: unreachable: ") and recap(out, "gone")["failed"] == "1", out
    for name in up:
        assert boxes[name].current() == sha["model-a"] and boxes[name].serving() == sha["model-a"], name
        model = boxes[name].home / "store" / "models" / sha["model-a"]
        assert not (model / "eval").exists() and (model / "model.onnx.json").is_file(), name
        assert incoming_left(boxes[name]) == [], name  # the copies went into the store, the gate record was read
    table = (results / "summary.md").read_text()
    assert "| good | none -> model-a 1 %s ort | " % sha["model-a"][:8] in table
    assert "skipped: the run is the ONNX itself" in table
    assert out.count(table.splitlines()[0]) == 1, out
    assert "no current model" in table  # the speed gate had nothing to compare with

    # 2. a floor no box can meet: the canary refuses B and the roll-out stops before the other boxes
    code, out = rollout(fleet, "model-b", "-e", "edgekit_min_fps=100000")
    rows = summary(results)
    assert code != 0 and "the roll-out stops here: %d boxes not reached" % (len(rows) - 1) in out, out
    assert rows["good"]["result"] == "kept" and "gate speed failed" in rows["good"]["why"], out
    assert "below --min-fps 100000" in rows["good"]["why"]
    assert all(rows[h]["result"] == "not reached" and "roll-out stopped after the batch good: 1 of 1 box did not take"
               in rows[h]["why"] for h in rows if h != "good")
    for name in up:
        assert boxes[name].current() == sha["model-a"] and boxes[name].serving() == sha["model-a"], name

    # 3. --check: what B would change on every box (the canary has B in its store, built), nothing changed
    code, out = rollout(fleet, "model-b", "--check", "-e", ONE_BATCH)
    rows = summary(results / "check")
    for name in up:
        plan = "would switch" if name == "good" else "would add, build, switch"
        assert rows[name]["result"] == "would switch" and rows[name]["why"] == plan, out
        assert boxes[name].current() == sha["model-a"] and boxes[name].serving() == sha["model-a"], name
        assert (boxes[name].home / "store" / "models" / sha["model-b"]).exists() == (name == "good")
    assert json.loads((results / "rollout.json").read_text())["stopped"]  # the roll-out's own records stay

    # 4. B, with the stale box's restart doing nothing; kill -9 the controller once the second batch has started
    fleet["inventory"]["fleet"]["hosts"]["stale"]["edgekit_restart_command"] = "true"
    argv, env = command(fleet, "rollout.yml", "-e", "edgekit_model=%s" % fleet["models"]["model-b"])
    started = json.loads((results / "rollout.json").read_text())["run"]
    second = list(fleet["inventory"]["fleet"]["hosts"])[1]
    proc = subprocess.Popen(argv, cwd=str(PLAYBOOK_DIR), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:
        record = results / ("%s.json" % second)
        run = json.loads((results / "rollout.json").read_text())["run"]
        if run != started and record.exists() and json.loads(record.read_text()).get("run") == run:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the roll-out ended before it could be interrupted"
    time.sleep(1.0)  # somewhere in the second box's steps
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert boxes["good"].current() == sha["model-b"] and boxes["good"].serving() == sha["model-b"]  # the canary
    cut = json.loads((results / ("%s.json" % second)).read_text())  # the first record stands for a box cut short
    assert cut["result"] == "failed" and cut["why"].startswith("did not finish: the run was interrupted"), cut

    # ... run again: it completes
    code, out = rollout(fleet, "model-b")
    rows = summary(results)
    assert code != 0, out
    assert rows["good"]["result"] == "up to date", out
    assert rows[second]["result"] == "switched", out
    assert rows["slow"]["result"] == "kept" and "below --min-speed-ratio 50" in rows["slow"]["why"], out
    assert rows["stale"]["result"] == "rolled back" and "not the current run's model" in rows["stale"]["why"], out
    assert rows["broken"]["result"] == rows["gone"]["result"] == "failed"
    want = {"good": "model-b", second: "model-b", "slow": "model-a", "stale": "model-a"}
    for name in up:
        assert boxes[name].current() == sha[want[name]], name
        assert boxes[name].serving() == sha[want[name]], name
        assert incoming_left(boxes[name]) == [], name  # kept, rolled back or switched: incoming/ is empty
    table = (results / "summary.md").read_text()
    assert out.count(table.splitlines()[0]) == 1, out  # one table, printed once, although the last batch failed
    if os.environ.get("EDGEKIT_ROLLOUT_TABLE"):  # where the README's table comes from
        shutil.copy(results / "summary.md", os.environ["EDGEKIT_ROLLOUT_TABLE"])
    assert "model-a 1 %s ort -> model-b 2 %s ort" % (sha["model-a"][:8], sha["model-b"][:8]) in table
    assert "/store/models/" not in table  # store paths said as <sha12>/<key>

    # 5. rollback.yml --check for the canary box (it would go back to A) and the slow one (A only: nothing to roll
    # back to), then for real: the canary back to A, served; the slow box fails as --check said
    code, out = playbook(fleet, "rollback.yml", "--check", "--limit", "good,slow")
    rows = summary(results / "rollback" / "check")
    assert code != 0 and rows["good"]["result"] == "would roll back", out
    assert rows["good"]["why"] == "would roll back to model-a 1 %s" % sha["model-a"][:12], out
    assert rows["slow"]["result"] == "failed" and "nothing to roll back to" in rows["slow"]["why"], out
    assert boxes["good"].current() == sha["model-b"] and boxes["good"].serving() == sha["model-b"]  # unchanged
    table = (results / "rollback" / "check" / "summary.md").read_text()
    assert "| good | model-b 2 %s ort -> model-a 1 %s ort |" % (sha["model-b"][:8], sha["model-a"][:8]) in table
    code, out = playbook(fleet, "rollback.yml", "--limit", "good,slow")
    rows = summary(results / "rollback")
    assert code != 0 and rows["good"]["result"] == "rolled back", out
    assert rows["slow"]["result"] == "failed" and "nothing to roll back to" in rows["slow"]["why"], out
    assert boxes["good"].current() == sha["model-a"] and boxes["good"].serving() == sha["model-a"]
    assert boxes["slow"].current() == sha["model-a"]
    assert list(rows) == ["good", "slow"]


@needs_tools
def test_rollout_stops_on_the_controller_before_pushing(yolov8n_onnx, tmp_path):
    """No model file, or a manifest whose sha256 is not the ONNX's: one message, nothing pushed, no records."""
    models = make_models(yolov8n_onnx, tmp_path / "models")
    home = tmp_path / "box"
    fleet = {"tmp": tmp_path, "inventory": {"fleet": {"hosts": {"box": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "edgekit_home": str(home),
        "edgekit_bin": str(BIN / "edgekit"), "edgekit_rollout_results": str(tmp_path / "rollout")}}}}}
    code, out = playbook(fleet, "rollout.yml", "-e", "edgekit_model=%s" % (tmp_path / "none.onnx"))
    assert code != 0 and "edgekit_model '%s' is not a file on the controller" % (tmp_path / "none.onnx") in out, out
    shutil.copy(str(models["model-b"]) + ".json", str(models["model-a"]) + ".json")  # B's manifest beside A
    code, out = playbook(fleet, "rollout.yml", "-e", "edgekit_model=%s" % models["model-a"])
    assert code != 0 and "model-a.onnx.json says sha256 %s... but model-a.onnx is %s..." % (
        sha256_file(models["model-b"])[:12], sha256_file(models["model-a"])[:12]) in out, out
    assert not home.exists() and not (tmp_path / "rollout").exists()


# --- edgekit models summary on records written by hand ---------------------------------------------------------------
A, B = "a" * 64, "b" * 64
MODEL_A = {"sha256": A, "key": "trt-fp16-0123456789ab", "name": "yolov8m.onnx", "version": "1"}
MODEL_B = {"sha256": B, "key": "trt-int8-0123456789ab", "name": "yolov8m-int8.onnx", "version": "2"}
SPEED = {"fps": 61.8, "current_fps": 41.2, "ratio": 1.5, "min_fps": 0, "min_ratio": 0.9, "passed": True}
ACCURACY = {"map": 0.401, "onnx_map": 0.412, "drop": 1.1, "max_drop": 1.0, "passed": False}


def write_run(folder, **more):
    write_json_atomic(folder / "rollout.json", dict({"run": "R2", "action": "rollout", "check": False,
                                                     "started": "2026-01-02 03:04 UTC",
                                                     "model": {"name": "yolov8m-int8.onnx", "sha256": B},
                                                     "hosts": ["nx-01", "nx-02", "nx-03", "nx-04"]}, **more))


def test_summary_one_table_with_gates_results_and_boxes_not_reached(tmp_path):
    write_run(tmp_path, stopped="after the batch nx-01, nx-02: 1 of 2 boxes did not take the model "
                                "(max_fail_percentage 0)")
    write_json_atomic(tmp_path / "nx-01.json", {
        "host": "nx-01", "run": "R2", "before": MODEL_A, "after": MODEL_B, "result": "switched", "why": "ok",
        "gates": {"gates": {"speed": SPEED, "accuracy": dict(ACCURACY, drop=0.2, passed=True)}},
        "health": {"healthy": True, "seconds": 4.26}})
    write_json_atomic(tmp_path / "nx-02.json", {
        "host": "nx-02", "run": "R2", "before": MODEL_A, "after": MODEL_A, "result": "kept",
        "why": "error: gate accuracy failed for bbbb/trt-int8: 1.10 points lost; current is unchanged "
               "(record: /x/g.json)",
        "gates": {"gates": {"speed": SPEED, "accuracy": ACCURACY}}})
    write_json_atomic(tmp_path / "nx-03.json", {"host": "nx-03", "run": "R1", "result": "switched"})  # an older run
    result = invoke(["models", "summary", tmp_path, "--markdown", tmp_path / "table.md"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "table.md").read_text()
    assert table == (tmp_path / "summary.md").read_text()
    lines = table.splitlines()
    assert lines[0] == "**edgekit roll-out of yolov8m-int8.onnx (bbbbbbbb), 2026-01-02 03:04 UTC: 1 switched, " \
                       "1 kept, 2 not reached**"
    assert lines[4] == ("| nx-01 | yolov8m 1 aaaaaaaa trt-fp16 -> yolov8m-int8 2 bbbbbbbb trt-int8 | 61.8 FPS, 1.50x "
                        "of 41.2 FPS (min 0.9x) | mAP50-95 0.401 vs its ONNX 0.412: 0.20 points lost (max 1) "
                        "| healthy after 4.3 s | switched | ok |")
    assert "| kept | gate accuracy failed for bbbb/trt-int8: 1.10 points lost; current is unchanged |" in lines[5]
    assert "1.10 points lost (max 1): FAILED" in lines[5] and "yolov8m 1 aaaaaaaa trt-fp16 (unchanged)" in lines[5]
    for line, host in ((lines[6], "nx-03"), (lines[7], "nx-04")):  # no record of this run: not reached
        assert line == "| %s | - | - | - | - | not reached | roll-out stopped after the batch nx-01, nx-02: 1 of 2 " \
                       "boxes did not take the model (max_fail_percentage 0) |" % host
    assert "nx-01" in result.output and "not reached" in result.output  # the terminal table
    doc = json.loads(invoke(["models", "summary", tmp_path, "--json"]).output)
    assert doc["ok"] is False and doc["failed"] == ["nx-02", "nx-03", "nx-04"]
    assert doc["counts"] == {"switched": 1, "kept": 1, "not reached": 2}


def test_summary_of_a_check_run_and_of_a_rollback(tmp_path):
    check, back = tmp_path / "check", tmp_path / "rollback"
    write_run(check, check=True, hosts=["nx-01"])
    write_json_atomic(check / "nx-01.json", {"host": "nx-01", "run": "R2", "before": MODEL_A, "after": MODEL_A,
                                             "model": MODEL_B, "result": "would switch", "why": "would add, build"})
    assert invoke(["models", "summary", check]).exit_code == 0
    assert "(--check: nothing changed)" in (check / "summary.md").read_text()
    assert "trt-fp16 -> yolov8m-int8 2 bbbbbbbb trt-int8 |" in (check / "summary.md").read_text()
    assert json.loads((check / "summary.json").read_text())["ok"] is True
    write_run(back, action="rollback", model=None, hosts=["nx-01", "nx-02"])
    write_json_atomic(back / "nx-01.json", {"host": "nx-01", "run": "R2", "before": MODEL_B, "after": MODEL_A,
                                            "result": "rolled back", "why": "asked for (rollback.yml)"})
    doc = json.loads(invoke(["models", "summary", back, "--json"]).output)
    assert doc["failed"] == ["nx-02"] and doc["counts"] == {"rolled back": 1, "not reached": 1}
    assert (back / "summary.md").read_text().startswith("**edgekit rollback, 2026-01-02")
    back_check = back / "check"  # rollback.yml --check: the model each box would go back to
    write_run(back_check, action="rollback", check=True, model=None, hosts=["nx-01", "nx-02"])
    write_json_atomic(back_check / "nx-01.json", {"host": "nx-01", "run": "R2", "before": MODEL_B, "after": MODEL_B,
                                                  "model": MODEL_A, "result": "would roll back",
                                                  "why": "would roll back to yolov8m 1 aaaaaaaaaaaa"})
    write_json_atomic(back_check / "nx-02.json", {"host": "nx-02", "run": "R2", "before": MODEL_A, "after": MODEL_A,
                                                  "result": "failed", "why": "Go back to the previous model: nothing "
                                                  "to roll back to: edgekit models status names no previous run"})
    doc = json.loads(invoke(["models", "summary", back_check, "--json"]).output)
    assert doc["failed"] == ["nx-02"] and doc["counts"] == {"would roll back": 1, "failed": 1}
    table = (back_check / "summary.md").read_text()
    assert table.startswith("**edgekit rollback (--check: nothing changed), 2026-01-02")
    assert "| nx-01 | yolov8m-int8 2 bbbbbbbb trt-int8 -> yolov8m 1 aaaaaaaa trt-fp16 |" in table
    assert "| nx-02 | yolov8m 1 aaaaaaaa trt-fp16 (unchanged) |" in table


def test_summary_shortens_store_paths(tmp_path):
    """A model that cannot be loaded: its error names the run's file up to three times; the table says
    <sha12>/<key>/file instead of HOME/store/models/<sha256>/runs/<key>/file."""
    engine = "/home/nvidia/edgekit/store/models/%s/runs/trt-int8-0123456789ab/model.engine" % B
    error = "%s cannot run here: cannot load %s: deserialize failed (%s)" % (engine, engine, engine)
    write_run(tmp_path, hosts=["nx-01"])
    write_json_atomic(tmp_path / "nx-01.json", {
        "host": "nx-01", "run": "R2", "before": MODEL_A, "after": MODEL_A, "result": "kept",
        "gates": {"gates": {"speed": {"error": error, "passed": False, "fps": None},
                            "accuracy": {"error": "cannot measure accuracy: %s/store/models/%s/eval has no data.yaml"
                                         % ("/home/nvidia/edgekit", B), "passed": False}}},
        "why": "error: gate speed failed for bbbbbbbbbbbb/trt-int8-0123456789ab: %s; current is unchanged "
               "(record: /home/nvidia/edgekit/store/models/%s/runs/trt-int8-0123456789ab/gates.json)" % (error, B)})
    assert invoke(["models", "summary", tmp_path]).exit_code == 0
    row = (tmp_path / "summary.md").read_text().splitlines()[4]
    short = "bbbbbbbbbbbb/trt-int8-0123456789ab/model.engine"
    assert "/store/" not in row and B not in row, row
    assert "| FAILED: %s cannot run here: cannot load %s: deserialize failed (%s) |" % (short, short, short) in row
    assert "| FAILED: cannot measure accuracy: bbbbbbbbbbbb/eval has no data.yaml |" in row
    assert row.endswith("| kept | gate speed failed for bbbbbbbbbbbb/trt-int8-0123456789ab: %s cannot run here: "
                        "cannot load %s: deserialize failed (%s); current is unchanged |" % (short, short, short))


def test_summary_errors(tmp_path):
    assert_user_error(invoke(["models", "summary", tmp_path / "none"]), "not a folder", "benchmarks/rollout")
    assert_user_error(invoke(["models", "summary", tmp_path]), "no roll-out records", "rollout.yml")


def test_gate_lines_count_in_the_singular_and_the_plural():
    from edgekit.rollout.gates import accuracy_line, speed_line

    speed = {"fps": 40.0, "frames": "synthetic 320x240", "min_fps": 0, "passed": True, "note": "no current model"}
    one = speed_line(dict(speed, iterations=1, rounds=1))
    assert "(synthetic 320x240, 1 iteration in 1 round, no FPS floor)" in one
    assert ", 4 iterations in 2 rounds," in speed_line(dict(speed, iterations=4, rounds=2))
    accuracy = {"map": 0.5, "onnx_map": 0.5, "data": "data.yaml", "split": "val", "drop": 0.0, "max_drop": 1.0,
                "passed": True}
    assert "(data.yaml, val, 1 image)" in accuracy_line(dict(accuracy, images=1))
    assert "(data.yaml, val, 48 images)" in accuracy_line(dict(accuracy, images=48))
