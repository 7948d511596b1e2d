//! Counts of the objects a run rewrites, per kind and namespace, for the dry-run report.

use std::collections::BTreeMap;
use std::fmt;

/// Objects per `(kind, namespace)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    counts: BTreeMap<(&'static str, String), usize>,
}

impl Summary {
    /// Counts one object.
    pub fn add(&mut self, kind: &'static str, namespace: &str) {
        *self.counts.entry((kind, namespace.to_owned())).or_default() += 1;
    }

    /// All objects counted.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// The count of one kind in one namespace.
    pub fn count(&self, kind: &str, namespace: &str) -> usize {
        self.counts
            .iter()
            .filter(|((k, ns), _)| *k == kind && ns == namespace)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One line per kind and namespace: `  SandboxClaim  team-a  3`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.counts.keys().map(|(k, _)| k.len()).max().unwrap_or(0);
        let ns_width = self.counts.keys().map(|(_, n)| n.len()).max().unwrap_or(0);
        for ((kind, namespace), count) in &self.counts {
            writeln!(f, "  {kind:<width$}  {namespace:<ns_width$}  {count}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind_and_namespace_in_aligned_lines() {
        let mut summary = Summary::default();
        summary.add("Sandbox", "a");
        summary.add("Sandbox", "a");
        summary.add("SandboxClaim", "team-b");
        assert_eq!(summary.total(), 3);
        assert_eq!(summary.count("Sandbox", "a"), 2);
        assert_eq!(
            summary.to_string(),
            "  Sandbox       a       2\n  SandboxClaim  team-b  1\n"
        );
    }
}
