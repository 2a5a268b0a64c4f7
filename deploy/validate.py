#!/usr/bin/env python3
"""Checks the Grafana and Prometheus assets in deploy/ (run by scripts/test).

- every dashboard in deploy/grafana/dashboards/*.json parses, has a uid,
  a title and a schemaVersion, unique panel ids, a gridPos on every panel
  inside the 24-column grid and no two panels overlapping;
- every query panel, every query and every template variable uses the
  provisioned datasource uid `qunimbus-prometheus`, and the datasource
  provisioning file defines exactly that uid;
- every metric name in a dashboard expression or an alert rule is listed in
  deploy/metrics.txt (catches typos); the overview dashboard shows every
  metric it is meant to show;
- every alert rule has a severity label and summary/description annotations,
  and the expected alerts exist.

Exit status 1 with one line per problem, 0 and a summary when all is well.
Needs python3 with PyYAML.
"""

import json
import pathlib
import re
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
DATASOURCE_UID = "qunimbus-prometheus"
# Metrics that are not QuNimbus's own but may appear in expressions.
FOREIGN_METRICS = {"up"}
EXPECTED_ALERTS = {
    "TrustScoreLow",
    "MtbfLow",
    "LedgerVerificationFailed",
    "FeedLatencyP99OverTarget",
    "CheckpointStale",
    "ComplianceFailing",
    "NodeDown",
    "QbtcEmergencyRed",
    "QbtcKillSwitchEngaged",
    "QbtcDailyLossLimitHit",
    "QbtcCircuitOpen",
    "BackupFailed",
    "BackupStale",
}
# What the overview dashboard must chart (SPEC §7 and the deployment issue).
OVERVIEW_METRICS = {
    "qunimbus_partners_connected",
    "qunimbus_market_latency_ms",
    "qunimbus_market_latency_seconds_bucket",
    "qunimbus_phi_qevf",
    "qunimbus_eph_throughput",
    "qunimbus_compliance_status",
    "qunimbus_trust_score",
    "qunimbus_ledger_blocks",
    "qunimbus_checkpoint_age_seconds",
    "qunimbus_ledger_verify_failures_total",
    "qunimbus_tsa_pending",
    "qunimbus_region_mtbf_hours",
    "qunimbus_rollout_phase_percent",
    "qunimbus_rejected_inputs_total",
    "qunimbus_compliance_violations_total",
}
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def known_metrics():
    """Sample names allowed in expressions, from deploy/metrics.txt."""
    names = set(FOREIGN_METRICS)
    for line in (DEPLOY / "metrics.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, kind, status = line.split()
        if kind not in {"gauge", "counter", "histogram"} or status not in {"exposed", "pending", "on_event"}:
            raise SystemExit(f"metrics.txt: bad line {line!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise SystemExit(f"metrics.txt: counter {name} must end in _total")
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def metric_names(expr):
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)       # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)      # range and subquery windows
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)     # Grafana variables ($__rate_interval)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def check_expr(where, expr, allowed, used):
    if not isinstance(expr, str) or not expr.strip():
        problem(where, "empty expression")
        return
    names = metric_names(expr)
    if not names:
        problem(where, f"no metric in {expr!r}")
    for name in sorted(names):
        used.add(name)
        if name not in allowed:
            problem(where, f"unknown metric {name!r} (not in deploy/metrics.txt)")


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def check_dashboard(path, allowed):
    where = path.relative_to(DEPLOY.parent)
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        problem(where, f"invalid JSON: {e}")
        return set()
    used = set()
    for key in ("uid", "title"):
        if not isinstance(dash.get(key), str) or not dash[key]:
            problem(where, f"missing {key}")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problem(where, "schemaVersion must be an integer >= 36")
    panels = list(walk_panels(dash.get("panels", [])))
    if not panels:
        problem(where, "no panels")
    ids = [p.get("id") for p in panels]
    for pid in set(ids):
        if not isinstance(pid, int):
            problem(where, f"panel id {pid!r} is not an integer")
        elif ids.count(pid) > 1:
            problem(where, f"panel id {pid} is used {ids.count(pid)} times")
    boxes = []
    for panel in panels:
        pw = f"{where} panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) for k in "hwxy"):
            problem(pw, "gridPos must have integer h, w, x, y")
        elif grid["x"] < 0 or grid["y"] < 0 or grid["w"] < 1 or grid["h"] < 1 \
                or grid["x"] + grid["w"] > 24:
            problem(pw, f"gridPos {grid} is outside the 24-column grid")
        else:
            boxes.append((pw, grid))
        if panel.get("type") == "row":
            continue  # rows group panels; they have no queries
        ds = panel.get("datasource")
        if not isinstance(ds, dict) or ds.get("uid") != DATASOURCE_UID:
            problem(pw, f"datasource must be {{uid: {DATASOURCE_UID}}}, got {ds!r}")
        targets = panel.get("targets")
        if not targets:
            problem(pw, "no queries")
        refs = [t.get("refId") for t in targets or []]
        if len(set(refs)) != len(refs):
            problem(pw, f"duplicate refId in {refs}")
        for target in targets or []:
            tw = f"{pw} query {target.get('refId')}"
            tds = target.get("datasource")
            if not isinstance(tds, dict) or tds.get("uid") != DATASOURCE_UID:
                problem(tw, f"datasource must be {{uid: {DATASOURCE_UID}}}, got {tds!r}")
            check_expr(tw, target.get("expr"), allowed, used)
    for i, (aw, a) in enumerate(boxes):
        for bw, b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] \
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                problem(aw, f"overlaps {bw}")
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            vw = f"{where} variable {var.get('name')}"
            ds = var.get("datasource")
            if not isinstance(ds, dict) or ds.get("uid") != DATASOURCE_UID:
                problem(vw, f"datasource must be {{uid: {DATASOURCE_UID}}}, got {ds!r}")
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            inner = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query or "")
            check_expr(vw, inner.group(1) if inner else query, allowed, used)
    return used


def check_datasource():
    path = DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
    doc = yaml.safe_load(path.read_text())
    uids = [d.get("uid") for d in doc.get("datasources", [])]
    if uids != [DATASOURCE_UID]:
        problem(path.relative_to(DEPLOY.parent), f"expected one datasource with uid {DATASOURCE_UID}, got {uids}")


def check_alerts(allowed):
    path = DEPLOY / "prometheus/alerts.yml"
    where = path.relative_to(DEPLOY.parent)
    doc = yaml.safe_load(path.read_text())
    seen = set()
    used = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert")
            rw = f"{where} alert {name or rule.get('record')!r}"
            if not name:
                problem(rw, "is not an alerting rule")
                continue
            if name in seen:
                problem(rw, "is defined twice")
            seen.add(name)
            if rule.get("labels", {}).get("severity") not in {"critical", "warning"}:
                problem(rw, "severity label must be critical or warning")
            for key in ("summary", "description"):
                if not rule.get("annotations", {}).get(key):
                    problem(rw, f"missing annotation {key}")
            check_expr(rw, rule.get("expr"), allowed, used)
    for name in sorted(EXPECTED_ALERTS - seen):
        problem(where, f"alert {name} is missing")
    return seen


def main():
    allowed = known_metrics()
    check_datasource()
    alerts = check_alerts(allowed)
    dashboards = sorted((DEPLOY / "grafana/dashboards").glob("*.json"))
    if not dashboards:
        problem("deploy/grafana/dashboards", "no dashboards")
    for path in dashboards:
        used = check_dashboard(path, allowed)
        if path.name == "qunimbus-overview.json":
            for name in sorted(OVERVIEW_METRICS - used):
                problem(path.relative_to(DEPLOY.parent), f"no panel shows {name}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"deploy/validate.py: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"deploy/validate.py: {len(dashboards)} dashboard(s) and {len(alerts)} alert rules OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
