//! The list of known violations the check tolerates while a refactor is under way. It can only
//! shrink: a violation missing from it fails the check, and so does an entry that no longer occurs.

use std::collections::BTreeSet;

/// The comparison of the violations found with the list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Found and listed: tolerated for now.
    pub tolerated: Vec<String>,
    /// Found and not listed: the check fails.
    pub new: Vec<String>,
    /// Listed and not found: the check fails until the entry is removed.
    pub stale: Vec<String>,
}

impl Verdict {
    /// Whether the check passes.
    pub fn passes(&self) -> bool {
        self.new.is_empty() && self.stale.is_empty()
    }
}

/// The entries of a list: one violation per line as the check prints it, without its line number;
/// blank lines and `#` comments are ignored.
pub fn parse(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Compares violations (each as its list entry) with the list.
pub fn compare(found: &BTreeSet<String>, listed: &BTreeSet<String>) -> Verdict {
    let (tolerated, new) = found.iter().cloned().partition(|v| listed.contains(v));
    Verdict {
        tolerated,
        new,
        stale: listed.difference(found).cloned().collect(),
    }
}
