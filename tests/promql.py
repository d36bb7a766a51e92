"""The metric names and label matchers a PromQL expression reads (a few regular expressions: no PromQL parser is
among the project's dependencies), for checking the fleet dashboard against real scrapes (test_camera_metrics)."""

import json
import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile", "inf", "nan"}
STRING = r'"(?:[^"\\]|\\.)*"'
NAME = r"(?<![\w.:$])[A-Za-z_:][\w:]*"


def metric_names(expr):
    """Metric names an expression selects (functions, keywords, label lists, matchers, ranges left out)."""
    text = re.sub(STRING, '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(NAME, text):
        if m.group() not in KEYWORDS and not text[m.end():].lstrip().startswith("("):
            names.add(m.group())
    return names


def selectors(expr):
    """(metric, [(label, op, value)]) of each ``name{matchers}`` in the expression."""
    out = []
    for m in re.finditer(r"(%s)\s*\{((?:%s|[^}\"])*)\}" % (NAME, STRING), expr):
        matchers = re.findall(r"(\w+)\s*(=~|!~|!=|=)\s*(%s)" % STRING, m.group(2))
        out.append((m.group(1), [(label, op, json.loads(value)) for label, op, value in matchers]))
    return out


def dashboard_queries(doc):
    """Every PromQL expression of the dashboard: panel targets (rows' panels too) and query variables."""
    exprs = []

    def walk(panels):
        for panel in panels:
            exprs.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(doc["panels"])
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.match(r"^label_values\((.*),\s*\w+\)$", query)
            exprs.append(("variable " + var["name"], m.group(1) if m else query))
    return exprs
