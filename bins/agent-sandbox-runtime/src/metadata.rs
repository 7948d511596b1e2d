//! `/v1/metadata`: the environment variables an agent may learn about its sandbox.

use std::collections::BTreeMap;

/// Name fragments that mark a variable as secret-looking; such variables are never shown.
pub const SECRET_MARKERS: &[&str] = &[
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CRED", "KEY", "AUTH", "BEARER", "PRIVATE", "CERT",
];

/// Whether a variable name looks like it holds a secret (case-insensitive).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|marker| upper.contains(marker))
}

/// The variables whose name starts with `prefix`, minus the secret-looking ones, sorted by name.
/// An empty prefix selects nothing, so the whole environment is never exposed by mistake.
pub fn filter_env(
    vars: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> BTreeMap<String, String> {
    if prefix.is_empty() {
        return BTreeMap::new();
    }
    vars.into_iter()
        .filter(|(name, _)| name.starts_with(prefix) && !looks_secret(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let vars = [
            ("SANDBOX_NAME", "a"),
            ("SANDBOX_API_TOKEN", "t"),
            ("SANDBOX_db_password", "p"),
            ("SANDBOX_SSH_PRIVATE_KEY", "k"),
            ("HOME", "/root"),
            ("SANDBOX_REGION", "r"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let shown = filter_env(vars.clone(), "SANDBOX_");
        assert_eq!(
            shown.keys().collect::<Vec<_>>(),
            ["SANDBOX_NAME", "SANDBOX_REGION"]
        );
        assert!(filter_env(vars, "").is_empty());
    }

    proptest! {
        /// Nothing shown lacks the prefix or contains a secret marker in any letter case.
        #[test]
        fn never_shows_secrets(vars in proptest::collection::vec(("(SANDBOX_)?[a-zA-Z_]{0,12}", "[a-z]{0,4}"), 0..20)) {
            let shown = filter_env(vars.clone(), "SANDBOX_");
            for name in shown.keys() {
                prop_assert!(name.starts_with("SANDBOX_"));
                let upper = name.to_uppercase();
                prop_assert!(SECRET_MARKERS.iter().all(|m| !upper.contains(m)));
            }
            for (name, _) in &vars {
                if name.starts_with("SANDBOX_") && !looks_secret(name) {
                    prop_assert!(shown.contains_key(name));
                }
            }
        }
    }
}
