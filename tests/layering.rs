//! The layout's rules, checked on the source (ARCHITECTURE.md, "Code map"): each
//! module imports only the modules below it, and only `cli` (with main.rs) knows
//! clap, argv, the terminal and exit codes. A `use` that breaks a rule fails here.

use std::fs;
use std::path::{Path, PathBuf};

/// Which of strata's top-level modules each module may name (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("sys", &[]),
    ("union", &["sys"]),
    ("daemon", &["union", "sys"]),
    ("launcher", &["sys"]),
    ("image", &["union", "sys"]),
    ("cli", &["image", "daemon", "launcher", "union", "sys"]),
];

/// Words only `cli` and main.rs may use: argv parsing, the terminal, process exit.
const FACE_ONLY: &[&str] = &["clap", "println!", "eprintln!", "std::process::exit"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of src/ belongs to ("main" and "lib" for those files).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.iter().next().expect("a component").to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code without comments: a rule is about what the code does, not what it says.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "main" || module == "lib" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| *m == module)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{module}: a new top-level module needs a row in ALLOWED and in ARCHITECTURE.md"));
        let text = fs::read_to_string(file).expect("read source");
        let name = file
            .strip_prefix(&src)
            .unwrap_or(file)
            .display()
            .to_string();
        for (n, line) in code_lines(&text) {
            for (other, _) in ALLOWED {
                if *other != module
                    && !allowed.contains(other)
                    && line.contains(&format!("crate::{other}"))
                {
                    bad.push(format!(
                        "src/{name}:{n}: {module} must not use {other}: {}",
                        line.trim()
                    ));
                }
            }
            if line.contains("super::super") {
                bad.push(format!(
                    "src/{name}:{n}: reaches out of its module with super::super"
                ));
            }
            if module != "cli" {
                for word in FACE_ONLY {
                    if line.contains(word) {
                        bad.push(format!(
                            "src/{name}:{n}: only cli may use {word}: {}",
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    bad
}

#[test]
fn modules_import_only_what_is_below_them() {
    let bad = violations();
    assert!(bad.is_empty(), "layering rules broken:\n{}", bad.join("\n"));
}

#[test]
fn the_check_sees_a_broken_rule() {
    // The scanner itself: a line that names cli from the union is caught, one in a
    // comment is not.
    let text = "use crate::cli::options;\n// crate::cli in a comment\n";
    let hits: Vec<_> = code_lines(text)
        .filter(|(_, l)| l.contains("crate::cli"))
        .collect();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, 1);
}
