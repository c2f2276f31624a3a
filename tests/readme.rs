//! The README's `meshd …` examples work as written once `meshd` is installed: every command
//! that needs no Kafka runs from a copy of the repository's `examples/` and `deploy/` and exits
//! as the README says; every file a `meshd run` or `meshd provision` example names exists.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Lines of the README's `sh` blocks that run `meshd`, without trailing comments.
fn meshd_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_sh = false;
    let mut commands = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let command = line.split("  #").next().unwrap_or("").trim();
        if in_sh && command.starts_with("meshd ") {
            commands.push(command.to_string());
        }
    }
    commands
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_meshd_example_in_the_readme_works_as_written() {
    let examples = meshd_examples();
    assert!(
        examples.len() >= 8,
        "the README shows meshd commands: {examples:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    for folder in ["examples", "deploy"] {
        copy_dir(&root().join(folder), &dir.path().join(folder));
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_meshd")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for command in &examples {
        let words: Vec<&str> = command.split_whitespace().collect();
        // These need a Kafka broker; the end-to-end tests run them. Their files must exist.
        if matches!(words[1], "run" | "provision" | "demo") {
            for word in &words[2..] {
                if word.ends_with(".yaml") {
                    assert!(
                        dir.path().join(word).exists(),
                        "`{command}` names {word}, which is not in the repository"
                    );
                }
            }
            continue;
        }
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("MESHD_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}` exited {}:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 6, "ran {ran} of {examples:?}");
}
