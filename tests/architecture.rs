//! The module structure stays layered (ARCHITECTURE.md): no import cycles between modules, and
//! no module uses a layer above its own. Checked from the source text, so it runs in
//! milliseconds in every test run; `cargo modules dependencies --lib --acyclic` (the
//! cargo-modules tool, see the README) checks the same on rust-analyzer's view of the crate.
//!
//! A module is a file. An edge A → B means A names a path into B (`use crate::b::…`,
//! `crate::b::X` in code, `super::…`). A parent's edges to its own descendants are not counted:
//! a `mod.rs` declares and re-exports its children, which is ownership, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom up; a module may use its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &["fsutil", "paths", "logs", "measure", "theme", "long_job"],
    ),
    ("models", &["models"]),
    ("kernels", &["gpu"]),
    ("features", &["features", "store", "remote"]),
    ("engine", &["engine"]),
    (
        "front ends",
        &["headless", "cli", "serve", "soak", "bench", "fuzzing"],
    ),
    ("ui", &["app", "panels", "kiosk"]),
];

/// Vocabulary every layer may name: the pages and the messages for the user are plain data
/// (the settings remember the open page; the store reports problems as notices).
const VOCABULARY: &[&str] = &["app::page", "app::notice"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path ("engine::families::faces") of every library source file.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let join = |n: &str| {
            if prefix.is_empty() {
                n.to_string()
            } else {
                format!("{prefix}::{n}")
            }
        };
        if path.is_dir() {
            modules(&path, &join(name), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match name {
                "lib" if prefix.is_empty() => "crate".to_string(),
                "main" if prefix.is_empty() => continue,
                "mod" => prefix.to_string(),
                _ => join(name),
            };
            out.insert(module, path);
        }
    }
}

/// The text without comments, string and char literals, and `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('a', '\n'); lifetimes ('a) have no closing quote nearby.
            let close = b[i + 1..]
                .iter()
                .position(|&c| c == b'\'')
                .map_or(1, |p| p + 2);
            i += close.min(4);
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    match out.find("#[cfg(test)]\nmod tests") {
        Some(at) => out[..at].to_string(),
        None => out,
    }
}

/// Every path the code names, as segments, with `crate`/`super`/`self` resolved against
/// `module`; `use` trees are expanded.
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let base: Vec<String> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut found = Vec::new();
    let mut push = |segments: Vec<String>| {
        let mut out: Vec<String> = Vec::new();
        let mut iter = segments.into_iter().peekable();
        match iter.peek().map(String::as_str) {
            Some("crate") => {
                iter.next();
            }
            Some("super") => {
                out = base.clone();
                while iter.peek().map(String::as_str) == Some("super") {
                    iter.next();
                    out.pop();
                }
            }
            Some("self") => {
                iter.next();
                out = base.clone();
            }
            _ => return,
        }
        out.extend(iter);
        found.push(out);
    };
    // `use` trees: `use` at the start of a line (after `pub`, `pub(crate)`…).
    for (at, _) in code.match_indices("use ") {
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        let lead = code[line_start..at].trim();
        if !(lead.is_empty() || lead == "pub" || lead.starts_with("pub(")) {
            continue;
        }
        let end = code[at..].find(';').map_or(code.len(), |e| at + e);
        // Aliases (`a::b as c`) keep their path: `#` marks where the alias starts.
        let tree: String = code[at + 4..end]
            .replace(" as ", "#")
            .split_whitespace()
            .collect();
        for p in expand(&tree) {
            push(
                p.split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
    }
    // Paths in code: crate::a::b, super::a.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(start) {
            let at = from + pos;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            push(
                code[at..end]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
    }
    found
}

/// Expands a use tree without spaces (`crate::a::{b,c::{d,e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split('#').next().unwrap_or(tree).to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut last) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[last..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            if p == "self" {
                vec![prefix.trim_end_matches("::").to_string()]
            } else {
                expand(&format!("{prefix}{p}"))
            }
        })
        .collect()
}

/// The module a path lands in: its longest prefix that is a module.
fn resolve(segments: &[String], known: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains_key(m))
}

fn is_descendant(child: &str, parent: &str) -> bool {
    parent == "crate" || child.starts_with(&format!("{parent}::"))
}

fn graph() -> (
    BTreeMap<String, PathBuf>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut known = BTreeMap::new();
    modules(&src(), "", &mut known);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &known {
        let text = std::fs::read_to_string(path).expect("read source");
        let out = edges.entry(module.clone()).or_default();
        for p in paths(&code(&text), module) {
            if let Some(target) = resolve(&p, &known)
                && target != *module
                && !is_descendant(&target, module)
            {
                out.insert(target);
            }
        }
    }
    (known, edges)
}

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|(_, tops)| tops.contains(&top))
}

#[test]
fn every_module_is_in_a_layer() {
    let (known, _) = graph();
    let loose: Vec<&String> = known
        .keys()
        .filter(|m| *m != "crate" && layer_of(m).is_none())
        .collect();
    assert!(
        loose.is_empty(),
        "modules in no layer (add them to LAYERS and ARCHITECTURE.md): {loose:?}"
    );
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let (_, edges) = graph();
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        let Some(lf) = layer_of(from) else { continue };
        for to in targets {
            if VOCABULARY.iter().any(|v| to == v) {
                continue;
            }
            if let Some(lt) = layer_of(to)
                && lt > lf
            {
                wrong.push(format!(
                    "{from} ({}) → {to} ({})",
                    LAYERS[lf].0, LAYERS[lt].0
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn there_are_no_import_cycles() {
    let (_, edges) = graph();
    // Tarjan's strongly connected components.
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        cycles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(ts) = s.edges.get(v) {
            for w in ts {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.cycles.push(comp);
            }
        }
    }
    let mut s = State {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let report: Vec<String> = s
        .cycles
        .iter()
        .map(|c| {
            let members: BTreeSet<&str> = c.iter().copied().collect();
            let detail: Vec<String> = c
                .iter()
                .flat_map(|m| {
                    edges[*m]
                        .iter()
                        .filter(|t| members.contains(t.as_str()))
                        .map(move |t| format!("  {m} → {t}"))
                })
                .collect();
            detail.join("\n")
        })
        .collect();
    assert!(
        report.is_empty(),
        "import cycles (each group uses itself in a loop):\n{}",
        report.join("\n\n")
    );
}

#[test]
fn the_checker_sees_what_it_should() {
    // A use tree with groups and `self`, resolved against the module it is in.
    let p = paths(
        "use crate::engine::{self, Event, families::faces::X};\nuse super::sibling::Y;\nfn f() { crate::gpu::probe::go(); }",
        "panels::faces::grid",
    );
    let flat: Vec<String> = p.iter().map(|s| s.join("::")).collect();
    assert!(flat.contains(&"engine".to_string()), "{flat:?}");
    assert!(flat.contains(&"engine::Event".to_string()), "{flat:?}");
    assert!(
        flat.contains(&"engine::families::faces::X".to_string()),
        "{flat:?}"
    );
    assert!(
        flat.contains(&"panels::faces::sibling::Y".to_string()),
        "{flat:?}"
    );
    assert!(flat.contains(&"gpu::probe::go".to_string()), "{flat:?}");
    // Comments and strings are not code.
    assert!(paths(&code("// use crate::app;\nlet s = \"crate::app\";"), "x").is_empty());
}
