//! The alert rules and the dashboard in deploy/monitoring/ against what a
//! node really exports: every expression parses as PromQL, every series
//! and label it names is on a live node's `/metrics` page (or is one that
//! Prometheus adds), every alert has a severity, a summary and a runbook
//! section that exists, and every runbook section has its alert.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use quire_runtime::config::NodeConfig;
use quire_runtime::ops::Scrape;
use quire_runtime::Node;
use quire_storage::Durability;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Series names on a page (summaries also under their `_sum`/`_count`)
/// and the labels each carries.
type Exported = BTreeMap<String, BTreeSet<String>>;

/// The page of a durable, listening, clustered node: every series a node
/// can export.
fn exported() -> Exported {
    let dir = tempfile::tempdir().unwrap();
    let port = quire_runtime::net::free_port_block(2);
    let mut config = NodeConfig::default();
    config.network.listen = Some(format!("127.0.0.1:{port}"));
    config.metrics.listen = Some("127.0.0.1:0".into());
    config.cluster.secret = Some("monitoring-test".into());
    config.demo.pingers_per_shard = 0;
    config.demo.pongers_per_shard = 0;
    config.demo.wasm_pongers_per_shard = 0;
    let node = Node::builder()
        .config(config)
        .shards(2)
        .durability(Durability::Batched)
        .data_dir(dir.path())
        .start()
        .unwrap();
    let addr = node.metrics_addr().unwrap().to_string();
    let page =
        quire_runtime::ops::http_get(&addr, "/metrics", std::time::Duration::from_secs(5)).unwrap();
    node.shutdown();
    let scrape = Scrape::parse(&page).unwrap();
    let mut exported = Exported::new();
    for s in &scrape.samples {
        exported
            .entry(s.name.clone())
            .or_default()
            .extend(s.labels.keys().cloned());
    }
    exported
}

/// Labels Prometheus itself puts on every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

#[derive(Default)]
struct Selectors(Vec<(String, Vec<String>)>);

impl ExprVisitor for Selectors {
    type Error = String;
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let name = vs.name.clone().ok_or("a selector without a metric name")?;
        let labels = vs
            .matchers
            .matchers
            .iter()
            .map(|m| m.name.clone())
            .filter(|l| l != "__name__")
            .collect();
        self.0.push((name, labels));
        Ok(true)
    }
}

/// Parses `expr` and checks every series and label in it; returns the
/// series named.
fn check_expr(expr: &str, exported: &Exported, whose: &str) -> Vec<String> {
    let ast =
        parser::parse(expr).unwrap_or_else(|e| panic!("{whose}: {expr:?} is not PromQL: {e}"));
    let mut selectors = Selectors::default();
    walk_expr(&mut selectors, &ast).unwrap_or_else(|e| panic!("{whose}: {e}"));
    assert!(
        !selectors.0.is_empty(),
        "{whose}: {expr:?} selects no series"
    );
    for (name, labels) in &selectors.0 {
        if name == "up" {
            continue; // Prometheus' own series for each target.
        }
        let Some(has) = exported.get(name) else {
            panic!("{whose}: {expr:?} names {name}, which a node does not export");
        };
        for label in labels {
            assert!(
                has.contains(label) || TARGET_LABELS.contains(&label.as_str()),
                "{whose}: {expr:?} matches label {label} that {name} does not have ({has:?})"
            );
        }
    }
    selectors.0.into_iter().map(|(n, _)| n).collect()
}

fn runbook_sections() -> BTreeSet<String> {
    std::fs::read_to_string(repo("docs/runbook.md"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect()
}

fn is_duration(d: &str) -> bool {
    let (n, unit) = d.split_at(d.len().saturating_sub(1));
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && ["s", "m", "h"].contains(&unit)
}

#[test]
fn rules_and_dashboard_name_only_what_a_node_exports() {
    let exported = exported();
    let sections = runbook_sections();

    // The alert rules.
    let text = std::fs::read_to_string(repo("deploy/monitoring/quire-alerts.yml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut alerts = BTreeSet::new();
    let mut covered = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups: a list") {
        let group_name = group["name"].as_str().expect("every group has a name");
        for rule in group["rules"].as_sequence().expect("rules: a list") {
            let alert = rule["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("{group_name}: a rule without an alert name"));
            assert!(alerts.insert(alert.to_string()), "{alert} appears twice");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no expr"));
            covered.extend(check_expr(expr, &exported, alert));
            if let Some(d) = rule.get("for") {
                let d = d.as_str().unwrap_or_default();
                assert!(is_duration(d), "{alert}: for: {d:?} is not a duration");
            }
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{alert}: severity {severity:?}"
            );
            let annotations = &rule["annotations"];
            assert!(
                annotations["summary"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{alert}: no summary"
            );
            let url = annotations["runbook_url"].as_str().unwrap_or_default();
            let anchor = url
                .strip_prefix("docs/runbook.md#")
                .unwrap_or_else(|| panic!("{alert}: runbook_url {url:?}"));
            assert_eq!(anchor, alert.to_lowercase(), "{alert}: runbook anchor");
            assert!(
                sections.contains(anchor),
                "{alert}: docs/runbook.md has no section {alert}"
            );
        }
    }
    for section in &sections {
        assert!(
            alerts.iter().any(|a| a.to_lowercase() == *section),
            "docs/runbook.md section {section} has no alert"
        );
    }
    // The failures the issue names each have a rule.
    for needed in [
        "quire_mailbox_fullest_messages",
        "quire_messages_rejected_total",
        "quire_reactor_stalls_total",
        "quire_shard_up",
        "quire_commit_failures_total",
        "quire_watchdog_nudges_total",
        "quire_cluster_members",
        "up",
    ] {
        assert!(covered.contains(needed), "no alert watches {needed}");
    }

    // The dashboard.
    let text = std::fs::read_to_string(repo("deploy/monitoring/quire-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        panels.push(p);
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
    }
    let mut queries = 0;
    let mut titles = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("untitled");
        if panel["type"] == "row" {
            titles.insert(title.to_string());
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no queries");
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: target without expr"));
            check_expr(expr, &exported, title);
            queries += 1;
        }
    }
    assert!(queries >= 20, "only {queries} dashboard queries");
    for row in [
        "Latency",
        "Throughput",
        "Queues",
        "Rejections",
        "Reactor",
        "Storage",
        "Cluster",
    ] {
        assert!(titles.contains(row), "the dashboard has no {row} row");
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap_or_else(|| panic!("template query {q:?}"));
            assert!(
                exported.contains_key(metric.trim()),
                "template names {metric}"
            );
        }
    }
}

#[test]
fn a_wrong_series_is_caught() {
    let mut exported = Exported::new();
    exported.insert("quire_agents".into(), ["shard".to_string()].into());
    check_expr("sum(quire_agents{shard=\"0\"})", &exported, "good");
    let wrong_name = std::panic::catch_unwind(|| {
        check_expr("quire_agent > 0", &exported, "typo");
    });
    assert!(wrong_name.is_err());
    let wrong_label = std::panic::catch_unwind(|| {
        check_expr("quire_agents{reason=\"x\"}", &exported, "label");
    });
    assert!(wrong_label.is_err());
    assert!(is_duration("5m") && !is_duration("5 minutes"));
}
