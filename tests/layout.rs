//! The layout of `src/` is the flow: each top-level module uses only the stages before it
//! (its rank below), and no module, file by file, imports one that imports it back. Read from
//! the code's own `use crate::…`, `super::…` and inline `crate::…` paths, so a change that
//! points a module upward fails here, with the import named.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// The stages in the order of the flow; a module may use only those before it (and `util`,
/// the leaf). `lint` sits beside the run: it reads suites, renders operators and may ask a
/// cluster for schemas, and nothing of the run uses it.
const RANKS: &[&str] = &[
    "util",
    "suite",
    "plan",
    "cluster",
    "outcome",
    "images",
    "operators",
    "lint",
    "run",
    "report",
    "history",
    "matrix",
    "session",
    "sweep",
];

/// A source file's module path: `src/cluster/client.rs` → `cluster::client`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The code of a file without its unit tests (which may use anything of their module).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map(|i| &text[..i]).unwrap_or(text)
}

/// Expands a use tree (`a::{b, c::{d, self}}`) into full paths.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim().trim_end_matches("::*");
        let full = match (prefix.is_empty(), path) {
            (_, "self") => prefix.to_string(),
            (true, p) => p.to_string(),
            (false, p) => format!("{prefix}::{p}"),
        };
        out.push(full);
        return;
    };
    let head = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let prefix = match (prefix.is_empty(), head.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => head.to_string(),
        (false, false) => format!("{prefix}::{head}"),
    };
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !inner[start..i].trim().is_empty() {
                    expand(&prefix, &inner[start..i], out);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand(&prefix, &inner[start..], out);
    }
}

/// Every module path a file refers to, made absolute (`crate::` dropped, `super::` resolved).
fn references(module: &str, code: &str) -> Vec<String> {
    // `super` of `a::b` (file a/b.rs) is `a`; of a folder's mod.rs `a::b`, also `a`.
    let parent = module.rsplit_once("::").map(|(p, _)| p.to_string()).unwrap_or_default();
    let absolute = |path: &str| -> Option<String> {
        let path = path.trim();
        if let Some(rest) = path.strip_prefix("crate::").or_else(|| path.strip_prefix("kubevet::")) {
            Some(rest.to_string())
        } else {
            path.strip_prefix("super::")
                .map(|rest| if parent.is_empty() { rest.to_string() } else { format!("{parent}::{rest}") })
        }
    };
    let mut found = Vec::new();
    // use statements (at the start of a line), possibly over several lines
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let statement = ["use ", "pub use ", "pub(crate) use "].iter().find_map(|k| trimmed.strip_prefix(k));
        if let Some(start) = statement {
            let from = offset + (line.len() - start.len());
            let end = code[from..].find(';').map(|e| from + e).unwrap_or(code.len());
            let mut paths = Vec::new();
            expand("", &code[from..end], &mut paths);
            found.extend(paths.iter().filter_map(|p| absolute(p)));
        }
        offset += line.len();
    }
    // inline paths: crate::a::b, super::a
    for marker in ["crate::", "kubevet::", "super::"] {
        for (i, _) in code.match_indices(marker) {
            if code[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String =
                code[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            found.extend(absolute(path.trim_end_matches(':')));
        }
    }
    found
}

struct Graph {
    /// module → modules it uses
    edges: BTreeMap<String, BTreeSet<String>>,
    /// (from, to) → the path written in the code, for the message
    why: BTreeMap<(String, String), String>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
                files.push(path);
            }
        }
    }
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f.strip_prefix(&src).expect("under src"))).collect();
    let mut graph = Graph { edges: BTreeMap::new(), why: BTreeMap::new() };
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        let text = std::fs::read_to_string(file).expect("read");
        for reference in references(&module, without_tests(&text)) {
            // The deepest module the path names (the rest is an item inside it).
            let segments: Vec<&str> = reference.split("::").collect();
            let target = (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|candidate| modules.contains(candidate));
            if let Some(target) = target.filter(|t| *t != module && !t.is_empty()) {
                graph.why.entry((module.clone(), target.clone())).or_insert(reference.clone());
                graph.edges.entry(module.clone()).or_default().insert(target);
            }
        }
        graph.edges.entry(module).or_default();
    }
    graph
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn every_stage_uses_only_the_stages_before_it() {
    let graph = graph();
    let rank = |m: &str| RANKS.iter().position(|r| *r == top(m));
    let mut wrong = Vec::new();
    for (from, targets) in &graph.edges {
        assert!(rank(from).is_some() || from.is_empty(), "module {from} has no place in RANKS: add its stage");
        for to in targets {
            if top(from) == top(to) {
                continue;
            }
            if let (Some(f), Some(t)) = (rank(from), rank(to))
                && t >= f
            {
                let path = &graph.why[&(from.clone(), to.clone())];
                wrong.push(format!("{from} uses {path}, but {} comes after {} in the flow", top(to), top(from)));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the flow:\n{}", wrong.join("\n"));
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = graph();
    // Depth-first search with colours; the first back edge found is reported as a cycle.
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.edges.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new())
        {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_checker_sees_use_trees_and_inline_paths() {
    let refs = references(
        "run::case",
        "use crate::{cluster::{Applied, wait::{Ending}}, util::ids};\nuse super::x;\nfn f() { crate::report::junit(); }",
    );
    for expected in ["cluster::Applied", "cluster::wait::Ending", "util::ids", "run::x", "report::junit"] {
        assert!(refs.iter().any(|r| r == expected), "{expected} missing from {refs:?}");
    }
}

/// ARCHITECTURE.md's table: each stage's row and the stages its "may use" column names.
fn documented_uses() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `src/")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else { continue };
        let may: String = last.trim().to_string();
        for path in first.split('`').filter(|p| p.starts_with("src/")) {
            let stage = path.trim_start_matches("src/").trim_end_matches('/').trim_end_matches(".rs").to_string();
            let uses = match may.as_str() {
                "everything" => None,
                "everything below it" => {
                    Some(RANKS.iter().take_while(|r| **r != stage).map(|r| r.to_string()).collect())
                }
                "nothing of kubevet" => Some(BTreeSet::new()),
                list => Some(list.split(',').map(|s| s.trim().trim_matches('`').to_string()).collect()),
            };
            rows.insert(stage, uses);
        }
    }
    rows
}

#[test]
fn architectures_may_use_column_is_what_the_code_does() {
    let graph = graph();
    let documented = documented_uses();
    let mut wrong = Vec::new();
    for stage in RANKS {
        let Some(allowed) = documented.get(*stage) else {
            wrong.push(format!("{stage} has no row in ARCHITECTURE.md"));
            continue;
        };
        let Some(allowed) = allowed else { continue };
        let used: BTreeSet<&str> = graph
            .edges
            .iter()
            .filter(|(from, _)| top(from) == *stage)
            .flat_map(|(_, to)| to.iter().map(|t| top(t)))
            .filter(|t| t != stage)
            .collect();
        for to in used {
            if !allowed.contains(to) {
                let (from, path) = graph
                    .why
                    .iter()
                    .find(|((f, t), _)| top(f) == *stage && top(t) == to)
                    .map(|((f, _), p)| (f.as_str(), p.as_str()))
                    .unwrap_or(("?", "?"));
                wrong.push(format!("{from} uses {path}, but ARCHITECTURE.md says {stage} may use only {allowed:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "ARCHITECTURE.md's may-use column is not what the code does:\n{}", wrong.join("\n"));
}
