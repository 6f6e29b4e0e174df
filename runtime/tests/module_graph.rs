//! The workspace's shape, checked: inside each crate the top-level modules
//! depend on each other without a circle, and no source file outside tests
//! grows past 650 lines. A change that closes a circle (say the network
//! reaching back into the shard runtime that owns it) fails here, naming
//! the modules and the files that import each way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose `src/` is checked, from the workspace root.
const CRATES: [&str; 5] = ["storage", "shards", "runtime", "bench", "clients/rust"];
const MAX_LINES: usize = 650;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ sits in the workspace")
        .to_path_buf()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without its unit tests and comments: what the module itself
/// depends on.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level modules that `code` names through `crate::`, including those
/// in `use crate::{a, b::c}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphanumeric() || c == '_') => {
                        named.insert(ident_at(&group[i..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let ident = ident_at(rest);
            if !ident.is_empty() {
                named.insert(ident.to_string());
            }
        }
    }
    named
}

/// Each top-level module's dependencies on its siblings, with a file that
/// makes each one.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(src).ok()?;
            let first = rel.components().next()?.as_os_str().to_str()?;
            Some(first.trim_end_matches(".rs").to_string())
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.trim_end_matches(".rs");
        if matches!(top, "lib" | "main" | "bin") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for named in named_modules(&code) {
            if named != top && modules.contains(&named) {
                graph
                    .entry(top.to_string())
                    .or_default()
                    .entry(named)
                    .or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    graph
}

/// A circle through `start`, if there is one (depth-first search).
fn circle_from(
    graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flat_map(|d| d.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let root = workspace();
    let mut circles = Vec::new();
    for krate in CRATES {
        let graph = module_graph(&root.join(krate).join("src"));
        assert!(
            krate == "clients/rust" || !graph.is_empty(),
            "{krate}: no module imports another, so the scan read nothing"
        );
        for module in graph.keys() {
            if let Some(circle) = circle_from(&graph, module) {
                let steps: Vec<String> = circle
                    .iter()
                    .zip(circle.iter().cycle().skip(1))
                    .map(|(a, b)| format!("{a} -> {b} ({})", graph[a][b].display()))
                    .collect();
                circles.push(format!("{krate}: {}", steps.join(", ")));
                break;
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_scan_sees_plain_and_grouped_imports() {
    let code = code_of(
        "use crate::a::X;\n// use crate::commented::Y;\nuse crate::{b, c::{D, E}, d};\nfn f() { crate::e::g() }\n#[cfg(test)]\nmod tests { use crate::z; }",
    );
    let named: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(named, ["a", "b", "c", "d", "e"]);
    let mut graph = BTreeMap::new();
    graph.insert(
        "x".to_string(),
        BTreeMap::from([("y".to_string(), PathBuf::from("x.rs"))]),
    );
    graph.insert(
        "y".to_string(),
        BTreeMap::from([("x".to_string(), PathBuf::from("y.rs"))]),
    );
    assert_eq!(circle_from(&graph, "x"), Some(vec!["x".into(), "y".into()]));
    graph.get_mut("y").unwrap().clear();
    assert_eq!(circle_from(&graph, "x"), None);
}

#[test]
fn no_source_file_outside_tests_is_over_650_lines() {
    let root = workspace();
    let mut long = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        sources(&root.join(krate).join("src"), &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into modules with one job each:\n{}",
        long.join("\n")
    );
}
