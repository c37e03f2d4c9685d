//! The source layout keeps its promises (issue 14): no file in src/ is over 600 lines, and the
//! library's modules import each other without a cycle.
//!
//! Each file is a module (`foo.rs` and `foo/mod.rs` are `foo`). A module imports another when
//! its code outside `#[cfg(test)]` names a path into it (`crate::a::b::X`, `super::x::Y`, or a
//! `use crate::{a, b}` group). A submodule naming its own ancestors is not counted: that is the
//! module tree, not an import. Test-only files (`tests.rs`) and the binary (`main.rs`) are left
//! out. The check reads text, so it needs no extra crate and runs in a few milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the crate root (empty name).
fn module_name(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code outside the test module and comments.
fn code_of(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts with `crate::` or `super::` (groups expanded one level).
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':').to_owned();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                rest = &rest[end..];
                continue;
            }
            if rest[end..].starts_with('{') {
                let group_end = rest[end..].find('}').map_or(rest.len(), |i| end + i);
                for item in rest[end + 1..group_end].split(',') {
                    let item = item.trim().split([' ', '{', ':']).next().unwrap_or("");
                    if !item.is_empty() && item != "self" {
                        out.push(format!("{path}::{item}"));
                    }
                }
            }
            out.push(path);
            rest = &rest[end..];
        }
    }
    out
}

/// The module a path leads into: its longest prefix that is a module.
fn target(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = Vec::new();
    match parts.first() {
        Some(&"crate") => {}
        Some(&"super") => {
            base = from.split("::").collect();
            base.pop();
        }
        _ => return None,
    }
    parts.remove(0);
    let mut best = None;
    for i in 1..=parts.len() {
        let candidate: Vec<&str> = base.iter().chain(&parts[..i]).copied().collect();
        let name = candidate.join("::");
        if modules.contains(&name) {
            best = Some(name);
        }
    }
    best
}

fn is_ancestor(ancestor: &str, of: &str) -> bool {
    ancestor.is_empty() || of.starts_with(&format!("{ancestor}::"))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name != "tests.rs" && f != &src.join("main.rs")
    });
    let modules: BTreeSet<String> = files.iter().map(|f| module_name(&src, f)).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let from = module_name(&src, file);
        let text = std::fs::read_to_string(file).expect("read");
        let to: BTreeSet<String> = paths_in(&code_of(&text))
            .iter()
            .filter_map(|p| target(&from, p, &modules))
            .filter(|t| *t != from && !is_ancestor(t, &from))
            .collect();
        edges.insert(from, to);
    }
    edges
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    walk(start, start, edges, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_file_in_src_is_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).expect("read").lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} has {n} lines", f.display()))
        .collect();
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let edges = graph();
    assert!(
        edges
            .get("session")
            .is_some_and(|to| to.contains("file_store")),
        "the graph must see real imports: {edges:?}"
    );
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|m| cycle_from(m, &edges))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn a_cycle_is_found() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cycle_from("a", &edges),
        Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
    );
    edges.insert("c".to_owned(), BTreeSet::new());
    assert_eq!(cycle_from("a", &edges), None);
    let modules = BTreeSet::from(["session".to_owned(), "session::login".to_owned()]);
    assert_eq!(
        target("session::login", "super::Session", &modules),
        None,
        "a submodule naming its parent's item resolves to no other module"
    );
    assert_eq!(
        paths_in("use crate::{auth::User, config::Config};"),
        vec!["crate::auth", "crate::config", "crate"]
    );
}
