"""Which row each report row is compared with, and its change in mAP50-95 points against it.

By default a row is compared with the model it was made from, as the manifests recorded it (results carry
``derived_from``, the source model's sha256): an engine with the ONNX it was built from, a Q/DQ ONNX with its
float ONNX, a pruned ONNX with the baseline exported beside it. The chain is followed to the nearest ancestor
that has a row in the same table with an mAP on the same dataset and split (an INT8 engine of a pruned ONNX is
compared with the pruned ONNX; without that row, with the baseline). With ``baseline`` (``edgekit report
--baseline NAME``) every row is compared with that one model instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edgekit.errors import EdgekitError

CHANGES = ("map50_95", "map50_95_small")  # the figures whose change is shown, in points (x100)


def parents(docs: Sequence[Dict[str, Any]]) -> Dict[str, str]:
    """sha256 -> the sha256 it was made from, over every result of every document (across tables: a link
    learned from one device's results holds on another's)."""
    out: Dict[str, str] = {}
    for doc in docs:
        for r in doc.get("results") or []:
            if r.get("sha256") and r.get("derived_from") and r["derived_from"] != r["sha256"]:
                out[r["sha256"]] = r["derived_from"]
    return out


def _data(row: Dict[str, Any]) -> Tuple:
    return row.get("dataset"), row.get("split")


def _identity(row: Dict[str, Any]) -> Any:
    return row.get("sha256") or row.get("model") or row.get("name")


def _labels(rows: List[Dict[str, Any]]) -> Dict[Any, str]:
    """How the ``vs`` cell names a model: its file name, or its path where two models of the table share one."""
    files = {_identity(r): str(r.get("model") or r.get("name")) for r in rows}
    names: Dict[str, set] = {}
    for identity, file in files.items():
        names.setdefault(Path(file).name, set()).add(identity)
    return {identity: Path(file).name if len(names[Path(file).name]) == 1 else file
            for identity, file in files.items()}


def _set_change(row: Dict[str, Any], base: Dict[str, Any], label: str) -> None:
    row["vs"] = label
    for key in CHANGES:
        a, b = row.get(key), base.get(key)
        row[key + "_change"] = None if a is None or b is None else round(100 * (a - b), 3)


def compare_with_ancestors(rows: List[Dict[str, Any]], links: Dict[str, str]) -> None:
    """Each evaluated row's nearest ancestor in ``rows`` (same dataset and split): ``vs`` and the changes."""
    index: Dict[Tuple, Dict[str, Any]] = {}
    for r in rows:  # the local row first where a model has remote rows too (those carry no mAP anyway)
        if r.get("sha256") and r.get("map50_95") is not None:
            index.setdefault((r["sha256"], _data(r)), r)
    labels = _labels(rows)
    for row in rows:
        if row.get("map50_95") is None:
            continue
        seen = {row.get("sha256")}
        sha = row.get("derived_from")
        while sha and sha not in seen:
            seen.add(sha)
            base = index.get((sha, _data(row)))
            if base is not None:
                _set_change(row, base, labels[_identity(base)])
                break
            sha = links.get(sha)


def _matches(row: Dict[str, Any], name: str) -> bool:
    model = row.get("model")
    return name in (row.get("name"), model) or (model is not None and (
        Path(model).name == name or Path(model).resolve() == Path(name).resolve()))


def compare_with_baseline(report: Dict[str, List[Dict[str, Any]]], name: str) -> None:
    """Every evaluated row against the model ``name`` (a name or file as the report shows it), per table and
    dataset; the baseline's own rows say ``(baseline)``. A name no evaluated row has, or one naming two models
    of one table, is an error."""
    found = False
    for heading, rows in report.items():
        chosen = [r for r in rows if _matches(r, name) and r.get("map50_95") is not None]
        models = sorted({str(r.get("model") or r.get("name")) for r in chosen})
        if len({_identity(r) for r in chosen}) > 1:
            raise EdgekitError("--baseline %s names %d models in the table of %s (%s): give the file as the report "
                               "shows it" % (name, len(models), heading, ", ".join(models)))
        if not chosen:
            continue
        found = True
        by_data = {_data(r): r for r in chosen}
        label = _labels(rows)[_identity(chosen[0])]
        for row in rows:
            base = by_data.get(_data(row))
            if row.get("map50_95") is None or base is None:
                continue
            if row is base:
                row["vs"] = "(baseline)"
            else:
                _set_change(row, base, label)
    if not found:
        benched = any(_matches(r, name) for rows in report.values() for r in rows)
        shown = sorted({str(r.get("name")) for rows in report.values() for r in rows
                        if r.get("map50_95") is not None})
        raise EdgekitError("--baseline %s: %s (evaluated models: %s)" % (
            name, "that model has no eval result here: run edgekit eval %s --data ... first" % name if benched
            else "no model of that name or file in the report", ", ".join(shown) or "none"))


def compare(report: Dict[str, List[Dict[str, Any]]], docs: Sequence[Dict[str, Any]],
            baseline: Optional[str] = None) -> None:
    """Set ``vs``, ``map50_95_change`` and ``map50_95_small_change`` on the rows of every table."""
    if baseline and report:  # no results at all is the caller's one-line error
        compare_with_baseline(report, baseline)
        return
    links = parents(docs)
    for rows in report.values():
        compare_with_ancestors(rows, links)
