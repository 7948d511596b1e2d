//! What the semantic checks depend on: the label domains claims may use.

/// The label domain claims may use in `additionalPodMetadata` unless configured otherwise.
pub const DEFAULT_ALLOWED_LABEL_DOMAIN: &str = "sandbox.users.io";

/// Settings the semantic checks depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// Lower-case domains whose labels (or sub-domains' labels) claims may add to their Pods.
    pub allowed_label_domains: Vec<String>,
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self {
            allowed_label_domains: vec![DEFAULT_ALLOWED_LABEL_DOMAIN.to_owned()],
        }
    }
}

impl ValidationContext {
    /// Parses an allow-list file's text: domains separated by commas or newlines, lower-cased.
    /// Empty text gives the default allow-list.
    pub fn from_allowed_domains(text: &str) -> Self {
        let domains: Vec<String> = text
            .split([',', '\n'])
            .map(|domain| domain.trim().to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect();
        if domains.is_empty() {
            Self::default()
        } else {
            Self {
                allowed_label_domains: domains,
            }
        }
    }
}
