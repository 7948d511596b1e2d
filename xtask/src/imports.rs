//! `cargo xtask imports`: fails on an upward import inside a crate (a module naming an item its
//! ancestor defines) and on a cycle between sibling modules, in every library and binary of the
//! workspace; `cargo xtask test` runs it first. Test code (`#[cfg(test)]`, `tests.rs`, integration
//! tests) is not checked. The rules are spelled out in `imports/rules.rs`.
//!
//! Known violations are tolerated only while listed in [`ALLOWLIST`], which can only shrink.

mod allowlist;
mod items;
mod rules;
mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::workspace::{self, cargo};
use tree::Tree;

/// The tolerated violations, relative to the workspace root.
const ALLOWLIST: &str = "xtask/imports-allowlist.txt";

/// Flags of `cargo xtask imports` (none).
#[derive(clap::Args)]
pub struct Args {}

/// One violation: the line printed, and its allowlist entry (the same without the line number, so an
/// entry survives edits elsewhere in the file).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// As printed.
    pub printed: String,
    /// As listed.
    pub entry: String,
}

/// Runs the check over the workspace and prints every violation.
pub fn run(_: &Args) -> anyhow::Result<()> {
    check_workspace()
}

/// Checks the workspace against the allowlist; fails on a new violation or a stale entry.
pub fn check_workspace() -> anyhow::Result<()> {
    let root = workspace::root();
    let findings = check(&root, &targets()?)?;
    let listed_text = std::fs::read_to_string(root.join(ALLOWLIST))
        .with_context(|| format!("reading {ALLOWLIST}"))?;
    let found: BTreeSet<String> = findings.iter().map(|f| f.entry.clone()).collect();
    let verdict = allowlist::compare(&found, &allowlist::parse(&listed_text));
    for finding in &findings {
        let note = if verdict.tolerated.contains(&finding.entry) {
            " (allowlisted)"
        } else {
            ""
        };
        println!("{}{note}", finding.printed);
    }
    for entry in &verdict.stale {
        println!("{ALLOWLIST}: no longer occurs, remove it: {entry}");
    }
    if !verdict.passes() {
        bail!(
            "{} new import violation(s), {} stale allowlist entr(y/ies): move the item down to the \
             module that uses it (or into a sibling both use), break the cycle, or update {ALLOWLIST}",
            verdict.new.len(),
            verdict.stale.len()
        );
    }
    eprintln!(
        "[imports] no new upward imports or module cycles ({} allowlisted)",
        verdict.tolerated.len()
    );
    Ok(())
}

/// Every violation in the given crate targets (name, root file), paths shown relative to `root`.
pub fn check(root: &Path, targets: &[(String, PathBuf)]) -> anyhow::Result<Vec<Finding>> {
    let mut findings = BTreeSet::new();
    for (name, file) in targets {
        let tree = Tree::load(name, file)?;
        for upward in rules::upward_imports(&tree) {
            let module = &tree.modules[upward.module];
            let file = module
                .file
                .strip_prefix(root)
                .unwrap_or(&module.file)
                .display();
            let what = format!(
                "{} imports {} defined in ancestor {}",
                tree.display(upward.module),
                upward.path,
                tree.display(upward.ancestor)
            );
            findings.insert(Finding {
                printed: format!("{file}:{}: {what}", upward.line),
                entry: format!("{file}: {what}"),
            });
        }
        for cycle in rules::cycles(&tree) {
            let line = format!("cycle: {}", cycle.join(" -> "));
            findings.insert(Finding {
                printed: line.clone(),
                entry: line,
            });
        }
    }
    Ok(findings.into_iter().collect())
}

/// The library and binary targets of every workspace package (not tests, benches, examples or build
/// scripts), from `cargo metadata`.
fn targets() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let mut targets = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let checked = target["kind"].as_array().into_iter().flatten().any(|k| {
                matches!(
                    k.as_str(),
                    Some("lib" | "rlib" | "bin" | "proc-macro" | "cdylib" | "staticlib")
                )
            });
            if let (true, Some(name), Some(file)) = (
                checked,
                target["name"].as_str(),
                target["src_path"].as_str(),
            ) {
                targets.push((name.to_owned(), PathBuf::from(file)));
            }
        }
    }
    targets.sort();
    Ok(targets)
}

#[cfg(test)]
mod tests;
