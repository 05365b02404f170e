//! The repository as its users meet it: the files the docs point to exist,
//! every crate carries its packaging metadata, and the errors that name an
//! API name one that exists (issue 13, "Packaging that the ecosystem
//! expects" and "Fix dead references").

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (this crate is `crates/percore`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every package directory of the workspace, from the root manifest.
fn members() -> Vec<PathBuf> {
    let manifest = read(&root().join("Cargo.toml"));
    let start = manifest.find("members = [").expect("a members list");
    let list = &manifest[start..start + manifest[start..].find(']').unwrap()];
    list.split('"').skip(1).step_by(2).map(|m| root().join(m)).collect()
}

/// Files under `dir` with one of `exts`, skipping build outputs.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

#[test]
fn docs_point_to_files_that_exist() {
    // `examples/X.rs`, `docs/X.md`, `ci/X.sh` and `tests/X.rs` named in a
    // doc or comment must exist in the repository, relative to the crate
    // that names them or to the root.
    let mut sources = Vec::new();
    for top in ["crates", "apps", "docs"] {
        files(&root().join(top), &[".rs", ".md", ".toml"], &mut sources);
    }
    sources.push(root().join("README.md"));
    sources.retain(|f| !f.ends_with("crates/percore/tests/repository.rs"));
    let mut dead = Vec::new();
    for f in &sources {
        let text = read(f);
        // Relative to any enclosing package (the fuzz crate sits inside
        // percore-kv's) or to the root.
        let krates: Vec<PathBuf> =
            f.ancestors().filter(|a| a.join("Cargo.toml").is_file()).map(Path::to_path_buf).collect();
        for (i, line) in text.lines().enumerate() {
            for prefix in ["examples/", "docs/", "ci/", "tests/"] {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    let before = rest[..at].chars().last();
                    let tail = &rest[at..];
                    rest = &rest[at + prefix.len()..];
                    // Only whole paths: `examples/list.rs`, not `foo/examples/...`.
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '_' || c == '-' || c == '.') {
                        continue;
                    }
                    let path: String =
                        tail.chars().take_while(|c| c.is_alphanumeric() || "/_-.".contains(*c)).collect();
                    let path = path.trim_end_matches('.');
                    if !path.ends_with(".rs") && !path.ends_with(".md") && !path.ends_with(".sh") {
                        continue;
                    }
                    if !krates.iter().any(|k| k.join(path).exists()) {
                        dead.push(format!("{}:{}: {path}", f.strip_prefix(root()).unwrap().display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(dead.is_empty(), "dead references:\n{}", dead.join("\n"));
}

#[test]
fn readme_points_to_the_design_map_in_the_repository() {
    let readme = read(&root().join("README.md"));
    assert!(readme.contains("(docs/DESIGN.md)"), "the README must link docs/DESIGN.md");
    assert!(!readme.contains("shared folder"), "the design map is in the repository now");
    let design = read(&root().join("docs/DESIGN.md"));
    for m in members() {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        assert!(design.contains(&name), "docs/DESIGN.md does not mention {name}");
    }
}

#[test]
fn every_crate_has_its_packaging_metadata() {
    let ws = read(&root().join("Cargo.toml"));
    assert!(!ws.contains("example.invalid"), "a placeholder repository URL");
    assert!(ws.contains("license = \"BSD-2-Clause\""));
    let license = read(&root().join("LICENSE"));
    assert!(license.starts_with("BSD 2-Clause License"), "LICENSE is not BSD-2-Clause");
    assert!(license.contains("Copyright (c) 2026, the percore authors"));
    let changelog = read(&root().join("CHANGELOG.md"));
    for m in members() {
        let manifest = read(&m.join("Cargo.toml"));
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        for field in
            ["description = ", "keywords = ", "categories = ", "readme = \"README.md\"", "[package.metadata.docs.rs]"]
        {
            assert!(manifest.contains(field), "{name}/Cargo.toml lacks {field}");
        }
        assert!(!manifest.contains("repository"), "{name} declares a repository, but there is no public URL");
        assert!(m.join("README.md").is_file(), "{name} has no README.md");
        assert!(changelog.contains(&format!("### {name}")), "CHANGELOG.md has no section for {name}");
    }
}

#[test]
fn rust_version_is_not_newer_than_the_toolchain_under_test() {
    // rust-version must name a toolchain that builds the workspace; CI tests
    // the machine's stable, so it cannot be newer than the one running this.
    let ws = read(&root().join("Cargo.toml"));
    let line = ws.lines().find(|l| l.starts_with("rust-version = ")).expect("a workspace rust-version");
    let declared: Vec<u32> = line.split('"').nth(1).unwrap().split('.').map(|p| p.parse().unwrap()).collect();
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .expect("rustc --version");
    let version = String::from_utf8(out.stdout).unwrap();
    let running: Vec<u32> =
        version.split_whitespace().nth(1).unwrap().split(['.', '-']).take(2).map(|p| p.parse().unwrap()).collect();
    assert!(declared[..2] <= running[..], "rust-version {declared:?} is newer than {version}");
}

#[test]
fn the_stack_exhaustion_hint_names_the_runtime_builder() {
    // The hint tells the user to turn guard pages off; the option is on the
    // runtime's builder, not on the uthread `Builder` (which has none).
    let _exists: fn(percore::RuntimeBuilder, bool) -> percore::RuntimeBuilder = percore::RuntimeBuilder::guard_pages;
    let e = percore::Error::StackExhausted { size: 65536, source: std::io::Error::from_raw_os_error(libc_enomem()) };
    let msg = e.to_string();
    assert!(msg.contains("RuntimeBuilder::guard_pages(false)"), "{msg}");
}

/// `ENOMEM` on Linux (the facade does not depend on `libc`).
fn libc_enomem() -> i32 {
    12
}
