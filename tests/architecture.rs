//! The import rules of docs/architecture.md, checked on the source: every
//! `crate::` path in non-test code under src/ is resolved to the file that
//! defines it (through `pub use` re-exports), each file belongs to one part,
//! and a part may import only the parts its rule names. Also: the pure files
//! import only pure files, and the module graph has no cycle.
//!
//! Run with `--nocapture` to print, for each part, the modules it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Which part each module belongs to: the longest matching entry wins.
/// Keep in step with docs/architecture.md.
const PARTS: &[(&str, Part)] = &[
    ("main", Part::Face),
    ("error", Part::Face),
    ("cli", Part::Face),
    ("app", Part::Control),
    ("network", Part::Control),
    ("api", Part::Api),
    ("engine", Part::Engine),
    ("event", Part::Event),
    ("nat", Part::Flows),
    ("nat::policy", Part::Model),
    ("forward", Part::Flows),
    ("forward::spec", Part::Model),
    ("forward::ports", Part::Model),
    ("forward::table", Part::Model),
    ("dns", Part::Services),
    ("dhcp", Part::Services),
    ("wire", Part::Packet),
    ("stack", Part::Packet),
    ("config", Part::Model),
    ("model", Part::Model),
    ("check", Part::Control),
    ("sys", Part::Sys),
    ("log", Part::Log),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Face,
    Control,
    Api,
    Engine,
    Event,
    Flows,
    Services,
    Packet,
    Model,
    Sys,
    Log,
}

impl Part {
    /// The parts this part may import (besides itself).
    fn may_import(self) -> &'static [Part] {
        use Part::*;
        match self {
            // error.rs names every part's error type.
            Face => &[Control, Api, Engine, Model, Sys, Log],
            Control => &[Api, Engine, Flows, Services, Packet, Model, Sys, Log],
            Engine => &[Api, Event, Flows, Services, Packet, Model, Sys, Log],
            Flows => &[Event, Packet, Model, Sys, Log],
            Event => &[Packet, Model],
            // The API server sheds connections with sys::os's fd reserve.
            Api => &[Model, Sys, Log],
            Services => &[Model, Log],
            Packet => &[Model, Log],
            Model => &[Packet],
            Sys => &[Packet, Log],
            Log => &[],
        }
    }
}

/// Files with no I/O: they may import only each other (scope 3 of issue 11).
const PURE: &[&str] = &[
    "config",
    "model::guard",
    "model::ipam",
    "model::member",
    "model",
    "forward::spec",
    "forward::ports",
    "forward::table",
    "nat::policy",
    "nat::pmtu",
    "nat::backlog",
    "network::request",
    "api::request",
    "api::reply",
    "dns::records",
    "dns::message",
    "dhcp",
    "wire",
    "wire::nft",
];

struct Module {
    /// `a::b` for src/a/b.rs or src/a/b/mod.rs; "" for lib.rs.
    path: String,
    /// Where it is, relative to the crate.
    file: String,
    /// Non-test code, comments and literals blanked (lines kept).
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_path(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut segs: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs.join("::")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Removes comments (doc links are not imports) and the contents of string
/// and char literals (a `{` in a format string is not a block).
fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                newlines(&b[i..end], &mut out);
                i = end;
            }
            b'"' => {
                // A raw string r"..." or r#"..."# has no escapes.
                let raw = i > 0 && (b[i - 1] == b'r' || b[i - 1] == b'#');
                let hashes = b[..i].iter().rev().take_while(|&&c| c == b'#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i;
                i += 1;
                if raw {
                    i = s[i..].find(&close).map_or(b.len(), |e| i + e + close.len());
                } else {
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                out.push(b'"');
                newlines(&b[start..i.min(b.len())], &mut out);
                out.push(b'"');
            }
            // A char literal ('{', '\n', '\'') but not a lifetime ('a).
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                let len = if b[i + 1] == b'\\' {
                    s[i + 3..].find('\'').map_or(0, |e| e + 1) + 3
                } else {
                    3
                };
                out.extend_from_slice(b"' '");
                i += len;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Keeps the line structure of what is blanked out.
fn newlines(skipped: &[u8], out: &mut Vec<u8>) {
    out.extend(skipped.iter().filter(|&&c| c == b'\n'));
}

/// The index of the `}` that closes the `{` at `open`.
fn matching_brace(s: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (i, &b) in s.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len().saturating_sub(1)
}

/// Blanks out `#[cfg(test)]` items (keeping their newlines); returns the
/// code and the names of `#[cfg(test)] mod name;` files declared here.
fn strip_tests(s: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let (mut out, mut test_mods, mut at) = (String::new(), Vec::new(), 0);
    while let Some(found) = s[at..].find(ATTR) {
        let start = at + found;
        out.push_str(&s[at..start]);
        let rest = start + ATTR.len();
        let semi = s[rest..].find(';').map(|i| rest + i);
        let brace = s[rest..].find('{').map(|i| rest + i);
        at = match (semi, brace) {
            (Some(sc), b) if b.is_none_or(|b| sc < b) => {
                let item = s[rest..sc].trim();
                if let Some(name) = item.strip_prefix("mod ") {
                    test_mods.push(name.trim().to_string());
                }
                sc + 1
            }
            (_, Some(b)) => matching_brace(s.as_bytes(), b) + 1,
            _ => s.len(),
        };
        out.extend(s[start..at].chars().filter(|&c| c == '\n'));
    }
    out.push_str(&s[at..]);
    (out, test_mods)
}

fn load() -> Vec<Module> {
    let mut files = Vec::new();
    rs_files(&src(), &mut files);
    files.sort();
    let mut modules = Vec::new();
    let mut test_only = BTreeSet::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let (code, tests) = strip_tests(&strip_comments(&text));
        let path = module_path(f);
        for t in tests {
            test_only.insert(if path.is_empty() {
                t
            } else {
                format!("{path}::{t}")
            });
        }
        let file = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let file = file
            .display()
            .to_string()
            .trim_start_matches('/')
            .to_string();
        modules.push(Module { path, file, code });
    }
    modules.retain(|m| {
        !test_only
            .iter()
            .any(|t| m.path == *t || m.path.starts_with(&format!("{t}::")))
    });
    modules
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses a path tree at `s[i..]` (after `crate::`): `a::b`, `a::{b, c::d}`,
/// `a::b as c`, `a::*`. Returns the full paths and where parsing stopped.
fn parse_tree(s: &[u8], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if s.get(i) == Some(&b'{') {
            i += 1;
            loop {
                i = parse_tree(s, i, &path, out);
                while i < s.len() && (s[i].is_ascii_whitespace() || s[i] == b',') {
                    i += 1;
                }
                if s.get(i) == Some(&b'}') || i >= s.len() {
                    return i + 1;
                }
            }
        }
        let start = i;
        while i < s.len() && (is_ident(s[i]) || s[i] == b'*') {
            i += 1;
        }
        let seg = String::from_utf8_lossy(&s[start..i]).into_owned();
        if seg.is_empty() {
            break;
        }
        if seg != "self" && seg != "*" {
            path.push(seg);
        }
        if s[i..].starts_with(b"::") {
            i += 2;
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

/// Every `crate::` path in `code` (and `rlnet::` in the binary).
fn crate_paths(code: &str, root: &str) -> Vec<Vec<String>> {
    let needle = format!("{root}::");
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(&needle) {
        let at = from + found;
        from = at + needle.len();
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b'$') {
            continue;
        }
        parse_tree(b, from, &[], &mut out);
    }
    out
}

/// Resolves `path` to the module that defines its item, following `pub use`
/// re-exports in the modules it passes through.
fn resolve(path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    let mut here = String::new();
    for seg in path {
        let next = if here.is_empty() {
            seg.clone()
        } else {
            format!("{here}::{seg}")
        };
        if modules.contains_key(&next) {
            here = next;
            continue;
        }
        // A re-export: `pub use sub::{.., seg, ..}` or `pub use sub::seg;`.
        let code = &modules[&here];
        let mut reexports = Vec::new();
        for (i, _) in code.match_indices("pub use ") {
            parse_tree(code.as_bytes(), i + 8, &[], &mut reexports);
        }
        for r in reexports {
            if r.last() == Some(seg) {
                let target = if here.is_empty() {
                    r[0].clone()
                } else {
                    format!("{here}::{}", r[0])
                };
                if modules.contains_key(&target) {
                    return Some(target);
                }
            }
        }
        // A macro exported at the crate root.
        if here.is_empty() {
            return modules
                .iter()
                .find(|(_, c)| c.contains(&format!("macro_rules! {seg}")))
                .map(|(m, _)| m.clone());
        }
        return Some(here);
    }
    Some(here)
}

/// The part-table entry a module falls under (longest prefix).
fn unit(module: &str) -> &'static str {
    PARTS
        .iter()
        .filter(|(p, _)| module == *p || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .map(|(p, _)| *p)
        .unwrap_or_else(|| {
            panic!("src module {module:?} is in no part: add it to PARTS and docs/architecture.md")
        })
}

fn part(module: &str) -> Part {
    let u = unit(module);
    PARTS.iter().find(|(p, _)| *p == u).unwrap().1
}

/// Module -> the modules it imports (resolved), non-test code only.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = load();
    let by_path: BTreeMap<String, String> = modules
        .iter()
        .map(|m| (m.path.clone(), m.code.clone()))
        .collect();
    let mut g = BTreeMap::new();
    for m in &modules {
        let root = if m.path == "main" { "rlnet" } else { "crate" };
        let mut deps = BTreeSet::new();
        for p in crate_paths(&m.code, root) {
            let target = resolve(&p, &by_path)
                .unwrap_or_else(|| panic!("{}: cannot resolve crate::{}", m.path, p.join("::")));
            if !target.is_empty() && target != m.path {
                deps.insert(target);
            }
        }
        g.insert(m.path.clone(), deps);
    }
    g
}

#[test]
fn parts_import_only_what_their_rule_allows() {
    let g = graph();
    let mut summary: BTreeMap<Part, BTreeSet<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    for (from, deps) in &g {
        if from.is_empty() {
            continue;
        }
        let fp = part(from);
        for to in deps {
            let tp = part(to);
            summary.entry(fp).or_default().insert(to.clone());
            if fp != tp && !fp.may_import().contains(&tp) {
                broken.push(format!("{from} ({fp:?}) imports {to} ({tp:?})"));
            }
        }
    }
    for (p, deps) in &summary {
        let list: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{p:?} imports: {}", list.join(", "));
    }
    assert!(
        broken.is_empty(),
        "imports against docs/architecture.md:\n{}",
        broken.join("\n")
    );
    // The check sees the imports it is about (a parser that found nothing
    // would pass every rule).
    assert!(g["engine"].contains("event"), "{:?}", g["engine"]);
    assert!(g["app"].contains("engine"), "{:?}", g["app"]);
}

#[test]
fn pure_files_import_only_pure_files() {
    let g = graph();
    let mut broken = Vec::new();
    for from in PURE {
        let deps = g
            .get(*from)
            .unwrap_or_else(|| panic!("no module {from} in src/"));
        for to in deps {
            if !PURE.contains(&to.as_str()) && part(to) != Part::Log {
                broken.push(format!("{from} imports {to}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "pure code imports I/O code:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_named_rules_of_issue_11_hold() {
    let g = graph();
    let imports = |from: &str, to: &str| {
        g.iter()
            .filter(|(m, _)| *m == from || m.starts_with(&format!("{from}::")))
            .flat_map(|(m, deps)| deps.iter().map(move |d| (m, d)))
            .filter(|(_, d)| *d == to || d.starts_with(&format!("{to}::")))
            .map(|(m, d)| format!("{m} -> {d}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(imports("network", "cli"), Vec::<String>::new());
    assert_eq!(imports("wire", "sys"), Vec::<String>::new());
    assert_eq!(imports("nat", "network"), Vec::<String>::new());
    assert!(
        !imports("engine", "nat").is_empty(),
        "the check must see engine -> nat"
    );
}

#[test]
fn no_two_parts_of_the_tree_import_each_other() {
    // The units are the entries of PARTS; the graph between them is acyclic.
    let g = graph();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, deps) in &g {
        if from.is_empty() {
            continue;
        }
        for to in deps {
            let (a, b) = (unit(from), unit(to));
            if a != b {
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n);
            return Some(cycle);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", c.join(" -> "));
        }
    }
    assert!(edges.len() > 10, "too few modules seen: {edges:?}");
}

/// Longest a non-test function may be, in lines from `fn` to its closing
/// brace (comments and blank lines count: they are read too).
const MAX_FN_LINES: usize = 80;

/// Data tables, one entry a line, exempt from [`MAX_FN_LINES`].
const TABLES: &[(&str, &str)] = &[
    // The seccomp allowlist: one syscall (or a group of siblings) a line.
    ("sys::seccomp", "plain"),
];

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    let mut seen = 0;
    for m in load() {
        let b = m.code.as_bytes();
        for (at, _) in m.code.match_indices("fn ") {
            if at > 0 && is_ident(b[at - 1]) {
                continue;
            }
            let name: String = m.code[at + 3..]
                .chars()
                .take_while(|&c| c.is_alphanumeric() || c == '_')
                .collect();
            // The body's `{`, unless a `;` comes first (a declaration).
            let Some(open) = m.code[at..].find(['{', ';']).map(|i| at + i) else {
                continue;
            };
            if name.is_empty() || b[open] == b';' {
                continue;
            }
            seen += 1;
            let close = matching_brace(b, open);
            let lines = m.code[at..=close].lines().count();
            if lines > MAX_FN_LINES && !TABLES.contains(&(m.path.as_str(), name.as_str())) {
                let line = m.code[..at].matches('\n').count() + 1;
                long.push(format!("{}:{line} {name}: {lines} lines", m.file));
            }
        }
    }
    assert!(seen > 500, "only {seen} functions found");
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them, or name a data table in TABLES):\n{}",
        long.join("\n")
    );
}
