//! The module layering, checked: `make check` runs these tests.
//!
//! main → {commands, daemon} → ops → db / process / tools → conninfo,
//! config, error. `src/daemon` names nothing in `commands`, `src/commands`
//! nothing in `daemon`, `ops` neither, and no file imports, directly or
//! through others, a file that imports it. A `mod` declaration and a
//! `mod.rs` re-exporting its children's items (`pub use child::…`, the
//! module's public face) are not imports; a `mod.rs` that calls into a
//! child is. Test code is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module: a module may name modules of its
/// own layer or below, never above.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("shutdown", 0),
    ("poll", 1),
    ("output", 0),
    ("hooks", 0),
    ("logging", 1),
    ("parallel", 2),
    ("config", 2),
    ("conninfo", 2),
    ("attach", 3),
    ("process", 2),
    ("replconf", 3),
    ("db", 3),
    ("pgtools", 3),
    ("remote", 3),
    ("tool_secrets", 3),
    ("events", 4),
    ("cli", 4),
    ("ops", 5),
    ("commands", 6),
    ("daemon", 6),
    ("layering", 7),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/db/connect.rs` → ["db", "connect"]; `src/db/mod.rs` → ["db"].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The code a file contributes outside its tests, without comment lines
/// (doc links name modules without using them).
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use_tree(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        return vec![path.to_string()];
    };
    let prefix = tree[..open].trim();
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    // Split the inner list at top-level commas.
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand_use_tree(p))
        .map(|p| match p.as_str() {
            "self" => prefix.trim_end_matches("::").to_string(),
            _ => format!("{prefix}{p}"),
        })
        .collect()
}

/// Module paths a file names: `crate::a::b…`, `super::x…` (in `use`
/// trees and in code), and for a module with children, the children it
/// calls into.
fn references(module: &[String], has_children: bool, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let flat = code.replace('\n', " ");
    for stmt in flat.split(';') {
        let t = stmt.trim();
        let body = t
            .strip_prefix("pub use ")
            .or_else(|| t.strip_prefix("pub(crate) use "))
            .or_else(|| t.strip_prefix("pub(super) use "))
            .or_else(|| t.strip_prefix("use "));
        if let Some(b) = body {
            paths.extend(expand_use_tree(b));
        }
    }
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains("::"))
        .chain(paths.iter().map(String::as_str))
        .collect();
    // `super` of a mod.rs is its parent; of a leaf file, its directory.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    for w in words {
        // `super::{…}` in a use tree: its expanded paths are listed apart.
        if w.ends_with("::") {
            continue;
        }
        let segs: Vec<&str> = w.split("::").filter(|s| !s.is_empty()).collect();
        match segs.first() {
            Some(&"crate") => out.push(segs[1..].iter().map(|s| s.to_string()).collect()),
            Some(&"super") => {
                // `super` is the module that declares this one.
                let mut base = parent.clone();
                let mut rest = &segs[1..];
                while rest.first() == Some(&"super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().map(|s| s.to_string()));
                out.push(base);
            }
            _ => {}
        }
    }
    if has_children {
        // Paths relative to the module: `child::item`, outside re-exports.
        for line in code.lines() {
            let l = line.trim_start();
            if l.starts_with("pub use ")
                || l.starts_with("pub(crate) use ")
                || l.starts_with("mod ")
                || l.starts_with("pub mod ")
            {
                continue;
            }
            for w in l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                let first = w.split("::").next().unwrap_or("");
                if w.contains("::") && !["crate", "super", "self", "std", "core"].contains(&first) {
                    let mut m = module.to_vec();
                    m.push(first.to_string());
                    out.push(m);
                }
            }
        }
    }
    out
}

/// The items a `mod.rs` re-exports: name → the module path it comes
/// from (a child `x::…`, or `crate::a::b::…`).
fn reexports(module: &[String], code: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let flat = code.replace('\n', " ");
    for stmt in flat.split(';') {
        let t = stmt.trim();
        let Some(rest) = t
            .strip_prefix("pub use ")
            .or_else(|| t.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let (path, items) = match rest.split_once('{') {
            Some((p, i)) => (
                p.trim_end_matches("::").to_string(),
                i.trim_end_matches('}').to_string(),
            ),
            None => match rest.rsplit_once("::") {
                Some((p, i)) => (p.to_string(), i.to_string()),
                None => continue,
            },
        };
        let segs: Vec<String> = path.split("::").map(|x| x.trim().to_string()).collect();
        let base: Vec<String> = match segs.first().map(String::as_str) {
            Some("crate") => segs[1..].to_vec(),
            Some("super") | Some("self") | None => continue,
            Some(_) => module.iter().cloned().chain(segs.iter().cloned()).collect(),
        };
        for item in items.split(',') {
            let (item_path, name) = match item.split_once(" as ") {
                Some((p, alias)) => (p.trim(), alias.trim()),
                None => (
                    item.trim(),
                    item.trim().rsplit("::").next().unwrap_or("").trim(),
                ),
            };
            if name.is_empty() {
                continue;
            }
            let mut full = base.clone();
            full.extend(item_path.split("::").map(|x| x.trim().to_string()));
            out.insert(name.to_string(), full);
        }
    }
    out
}

struct Graph {
    modules: BTreeSet<Vec<String>>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut exported: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for f in &files {
        if f.file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let m = module_of(f);
            let names = reexports(&m, &non_test_code(&text));
            exported.insert(m, names);
        }
    }
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // A file that declares child modules (a mod.rs, or `x.rs` beside
        // an `x/` directory) can name them by relative paths.
        let has_children = modules
            .iter()
            .any(|o| o.len() == m.len() + 1 && o.starts_with(&m));
        for r in references(&m, has_children, &non_test_code(&text)) {
            // The longest prefix that is a file of ours.
            let target = (1..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| modules.contains(p));
            // A name a mod.rs re-exports belongs to where it comes from.
            let longest = |r: &[String]| {
                (1..=r.len())
                    .rev()
                    .map(|n| r[..n].to_vec())
                    .find(|p| modules.contains(p))
            };
            let target = target.map(|t| {
                let via = r.get(t.len()).and_then(|n| exported.get(&t)?.get(n));
                match via.and_then(|full| longest(full)) {
                    Some(origin) => origin,
                    None => t,
                }
            });
            if let Some(t) = target {
                if t != m {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    Graph { modules, edges }
}

/// Same-layer modules that must stay apart: the CLI and the daemon share
/// only what is below them.
const APART: &[(&str, &str)] = &[("commands", "daemon"), ("daemon", "commands")];

#[test]
fn the_commands_and_the_daemon_name_nothing_of_each_other() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (Some(f), Some(t)) = (from.first(), to.first()) else {
                continue;
            };
            if APART.contains(&(f.as_str(), t.as_str())) {
                bad.push(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn layer(m: &[String]) -> Option<u8> {
    let top = m.first()?;
    LAYERS.iter().find(|(n, _)| n == top).map(|(_, l)| *l)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let g = graph();
    let missing: Vec<String> = g
        .modules
        .iter()
        .filter(|m| !m.is_empty() && layer(m).is_none())
        .map(|m| m.join("/"))
        .collect();
    assert!(
        missing.is_empty(),
        "add to LAYERS in src/layering.rs: {missing:?}"
    );
}

#[test]
fn no_module_names_a_module_of_a_higher_layer() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g.edges {
        let (Some(lf), false) = (layer(from), from.is_empty()) else {
            continue;
        };
        for to in tos {
            if let Some(lt) = layer(to) {
                if lt > lf {
                    bad.push(format!("{} -> {}", from.join("::"), to.join("::")));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn no_import_circles_between_files() {
    let g = graph();
    // Depth-first search; a back edge is a circle.
    fn visit(
        m: &Vec<String>,
        g: &Graph,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        found: &mut Vec<String>,
    ) {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for t in g.edges.get(m).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, g, state, stack, found),
                1 => {
                    let i = stack.iter().position(|s| s == t).unwrap_or(0);
                    let cycle: Vec<String> = stack[i..]
                        .iter()
                        .chain(std::iter::once(t))
                        .map(|s| s.join("::"))
                        .collect();
                    found.push(cycle.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for m in &g.modules {
        if state.get(m).copied().unwrap_or(0) == 0 {
            visit(m, &g, &mut state, &mut Vec::new(), &mut found);
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}
