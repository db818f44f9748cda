//! Every crate lists its integration-test files by hand (`autotests = false`),
//! so a file that is in neither list would never be compiled, and its tests
//! would pass by not running. This test reads the lists.

use std::fs;
use std::path::{Path, PathBuf};

/// Test files of `crate_dir` that neither `tests/integration.rs` declares
/// as a module nor `Cargo.toml` names as a binary of its own.
fn unlisted_test_files(crate_dir: &Path) -> Vec<PathBuf> {
    let tests = crate_dir.join("tests");
    let Ok(entries) = fs::read_dir(&tests) else {
        return Vec::new();
    };
    let root = fs::read_to_string(tests.join("integration.rs")).unwrap_or_default();
    let manifest = fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let mut unlisted: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let module = format!("\nmod {stem};\n");
            let binary = format!("path = \"tests/{stem}.rs\"");
            !root.contains(&module) && !manifest.contains(&binary)
        })
        .collect();
    unlisted.sort();
    unlisted
}

#[test]
fn every_test_file_of_the_workspace_is_compiled_into_a_test_binary() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut crates = 0;
    for name in [
        "mesh-core",
        "mesh-tls",
        "mesh-policy",
        "mesh-retry",
        "mesh-metrics",
        "examples",
        "benches",
    ] {
        let dir = workspace.join(name);
        assert!(dir.join("Cargo.toml").is_file(), "{name} is a crate");
        crates += 1;
        let unlisted = unlisted_test_files(&dir);
        assert!(
            unlisted.is_empty(),
            "{name}: add these to tests/integration.rs or to Cargo.toml as [[test]]: {unlisted:?}"
        );
    }
    assert_eq!(crates, 7);
}

#[test]
fn a_test_file_in_neither_list_is_found() {
    let dir = std::env::temp_dir().join(format!("mesh-test-binaries-{}", std::process::id()));
    let tests = dir.join("tests");
    fs::create_dir_all(&tests).unwrap();
    for file in [
        "listed.rs",
        "alloc.rs",
        "forgotten.rs",
        "listed_too.rs",
        "notes.md",
    ] {
        fs::write(tests.join(file), "").unwrap();
    }
    fs::write(
        tests.join("integration.rs"),
        "//! The root.\n\nmod listed;\n",
    )
    .unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        "[[test]]\nname = \"integration\"\npath = \"tests/integration.rs\"\n\n\
         [[test]]\nname = \"alloc\"\npath = \"tests/alloc.rs\"\n",
    )
    .unwrap();
    let unlisted = unlisted_test_files(&dir);
    fs::remove_dir_all(&dir).unwrap();
    let names: Vec<_> = unlisted
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["forgotten.rs", "listed_too.rs"]);
}
