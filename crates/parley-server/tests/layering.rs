//! The server's modules stay a stack: each top-level module of `src/` (a `name.rs` or a `name/`
//! directory; `lib.rs` and `main.rs`, which wire everything, aside) may use only modules in its
//! own layer or below, and no set of modules may use each other in a circle. The layers are the
//! table below, the same as in the crate's top doc comment (`src/lib.rs`); a new module has to
//! be given a place in it.
//!
//! Read from the source text: every `crate::name` outside comments counts, in `use` lines and in
//! paths alike, so the test needs no parser and no build of the crate.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top; a module may use those of its own layer and the layers before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "facts and persistence",
        &[
            "clock", "config", "data_dir", "flood", "isupport", "metrics", "store", "tls",
        ],
    ),
    (
        "bytes to sockets and the in-memory world",
        &["multiline", "outbound", "relay", "state"],
    ),
    (
        "durable messages and logins",
        &["accounts", "history", "webpush"],
    ),
    ("the shared state", &["server"]),
    ("delivery", &["fanout"]),
    ("the cluster", &["cluster"]),
    ("what a handler gets", &["context"]),
    ("handlers", &["command"]),
    (
        "sockets, tasks and tools",
        &[
            "acme",
            "admin",
            "connection",
            "inspect",
            "listener",
            "metrics_http",
            "web",
        ],
    ),
];

/// An import of `to` by module `from`: where it is and how it reads.
#[derive(Clone)]
struct Import {
    file: PathBuf,
    line: usize,
    text: String,
}

type Graph = BTreeMap<String, BTreeMap<String, Import>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules and the `.rs` files each one is made of.
fn modules(root: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(root).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            modules.entry(name).or_insert_with(Vec::new).extend(files);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "lib" && stem != "main" {
                modules
                    .entry(stem.to_owned())
                    .or_insert_with(Vec::new)
                    .push(path);
            }
        }
    }
    modules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `source` with every comment blanked out (kept as spaces and newlines, so line numbers hold)
/// and string literals left alone, so that a `//` inside a string does not hide the rest of the
/// line.
fn without_comments(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let blank = |b: u8| if b == b'\n' { b'\n' } else { b' ' };
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend([b' ', b' ']);
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend([b' ', b' ']);
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(bytes[i]));
                        i += 1;
                    }
                }
            }
            // A raw string (`r"..."`, `r#"..."#`), which may hold quotes: copied up to its end.
            b'r' if (i == 0 || !is_ident(bytes[i - 1]))
                && matches!(bytes.get(i + 1), Some(b'"' | b'#')) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    out.push(b'r');
                    i += 1;
                    continue;
                }
                let mut end = "\"".to_owned();
                end.push_str(&"#".repeat(hashes));
                let body = i + 2 + hashes;
                let close = source[body..]
                    .find(&end)
                    .map_or(bytes.len(), |at| body + at + end.len());
                out.extend_from_slice(&bytes[i..close]);
                i = close;
            }
            b'"' => {
                out.push(b'"');
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        out.push(bytes[i]);
                        i += 1;
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                if i < bytes.len() {
                    out.push(b'"');
                    i += 1;
                }
            }
            // A character literal holding a quote or slash, which the cases above would misread.
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => {
                out.extend_from_slice(&bytes[i..i + 3]);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("blanking comments keeps UTF-8")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The top-level module names that `crate::` paths in `code` start with, each with its line:
/// `crate::name` and every name at the top of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut from = 0;
    while let Some(offset) = code[from..].find("crate::") {
        let at = from + offset;
        from = at + "crate::".len();
        // `$crate::` in a macro, or the tail of a longer name such as `my_crate::`.
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b'$') {
            continue;
        }
        let mut i = from;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'{') {
            let mut depth = 0;
            let mut expect_name = true;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        expect_name = depth == 1;
                        i += 1;
                    }
                    b'}' => {
                        depth -= 1;
                        i += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' => {
                        expect_name = depth == 1;
                        i += 1;
                    }
                    b if is_ident(b) => {
                        let start = i;
                        while i < bytes.len() && is_ident(bytes[i]) {
                            i += 1;
                        }
                        if expect_name {
                            found.push((code[start..i].to_owned(), line_of(start)));
                        }
                        expect_name = false;
                    }
                    _ => i += 1,
                }
            }
        } else {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            if i > start {
                found.push((code[start..i].to_owned(), line_of(start)));
            }
        }
    }
    found
}

fn graph(root: &Path) -> Graph {
    let modules = modules(root);
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let edges = graph.entry(name.clone()).or_default();
        for file in files {
            let source = fs::read_to_string(file).expect("a source file is readable");
            let code = without_comments(&source);
            for (used, line) in crate_paths(&code) {
                if used == *name || !modules.contains_key(&used) {
                    continue;
                }
                let text = source.lines().nth(line - 1).unwrap_or("").trim().to_owned();
                edges.entry(used).or_insert_with(|| Import {
                    file: file.strip_prefix(root).unwrap_or(file).to_path_buf(),
                    line,
                    text,
                });
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

fn describe(from: &str, to: &str, import: &Import) -> String {
    format!(
        "{from} -> {to}: src/{}:{}: {}",
        import.file.display(),
        import.line,
        import.text
    )
}

/// One cycle through `graph`, as the modules in order, if there is any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|m| m == next).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

/// What is wrong with `graph`: modules without a layer, imports of a higher layer, a cycle.
fn problems(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for module in graph.keys() {
        if layer_of(module).is_none() {
            problems.push(format!(
                "module `{module}` has no layer: add it to LAYERS in tests/layering.rs and to \
                 the layering in src/lib.rs's doc comment"
            ));
        }
    }
    for (from, edges) in graph {
        for (to, import) in edges {
            if let (Some(low), Some(high)) = (layer_of(from), layer_of(to)) {
                if high > low {
                    problems.push(format!(
                        "{}: `{from}` ({}) may not use `{to}` ({}), a layer above it; move what \
                         it needs down, or pass it in",
                        describe(from, to, import),
                        LAYERS[low].0,
                        LAYERS[high].0
                    ));
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(graph) {
        let mut steps = Vec::new();
        for (i, from) in cycle.iter().enumerate() {
            let to = &cycle[(i + 1) % cycle.len()];
            if let Some(import) = graph.get(from).and_then(|e| e.get(to)) {
                steps.push(format!("    {}", describe(from, to, import)));
            }
        }
        problems.push(format!(
            "import cycle {}:\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        ));
    }
    problems
}

#[test]
fn every_module_uses_only_its_layer_and_those_below_without_cycles() {
    let graph = graph(&src());
    assert!(
        graph.contains_key("server") && graph.contains_key("command"),
        "read the modules of {}",
        src().display()
    );
    let problems = problems(&graph);
    assert!(
        problems.is_empty(),
        "the server's layering is broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn comments_do_not_count_and_groups_do() {
    let code = without_comments(
        "use crate::{alpha, beta::{x, y}, gamma::z};\n// crate::delta\n/* crate::epsilon */\n\
         let s = \"// not a comment\"; crate::zeta::f();\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["alpha", "beta", "gamma", "zeta"]);
}

#[test]
fn an_upward_import_and_a_cycle_are_both_named_with_their_file() {
    let import = |file: &str| Import {
        file: PathBuf::from(file),
        line: 3,
        text: "use crate::x;".into(),
    };
    let mut graph = Graph::new();
    graph
        .entry("state".into())
        .or_default()
        .insert("server".into(), import("state/world.rs"));
    graph
        .entry("server".into())
        .or_default()
        .insert("state".into(), import("server.rs"));
    let problems = problems(&graph);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("state -> server: src/state/world.rs:3")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("import cycle") && p.contains("src/server.rs:3")),
        "{problems:?}"
    );
}
