//! Finds the Debian mirror this machine's apt already uses, so the rootfs build needs no mirror
//! configured anywhere in the project (each machine has its own, and none is named in the repository).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where apt keeps its sources.
const APT_DIR: &str = "/etc/apt";

/// Whether a whitespace-separated field value contains a word.
fn has_word(value: &str, word: &str) -> bool {
    value.split_whitespace().any(|w| w == word)
}

/// The first `URIs:` of a `deb` stanza in deb822 `.sources` text whose `Suites` include `suite` and
/// whose `Components` include `component`. Disabled stanzas (`Enabled: no`) are skipped.
pub fn from_deb822(text: &str, suite: &str, component: &str) -> Option<String> {
    let mut stanzas = vec![Vec::<(String, String)>::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let stanza = stanzas.last_mut()?;
        if line.starts_with([' ', '\t']) {
            // A continuation line extends the previous field's value.
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    stanzas.iter().find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let enabled = field("enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let matches = enabled
            && field("types").is_some_and(|v| has_word(v, "deb"))
            && field("suites").is_some_and(|v| has_word(v, suite))
            && field("components").is_some_and(|v| has_word(v, component));
        matches
            .then(|| field("uris")?.split_whitespace().next().map(str::to_string))
            .flatten()
    })
}

/// The URL of the first classic one-line `deb [options] URL SUITE COMPONENT…` entry for `suite`
/// with `component`.
pub fn from_one_line(text: &str, suite: &str, component: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let rest = line.trim().strip_prefix("deb ")?.trim_start();
        // Options such as `[arch=amd64 signed-by=…]` come before the URL and may contain spaces.
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let url = words.next()?;
        (words.next()? == suite && words.any(|w| w == component)).then(|| url.to_string())
    })
}

/// Files of a directory with the given extension, sorted, as apt reads them.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// The mirror URL for `suite main` from the host's apt sources: `sources.list.d/*.sources` first,
/// then the one-line `sources.list` and `sources.list.d/*.list`.
pub fn host_mirror(suite: &str) -> anyhow::Result<String> {
    let apt = Path::new(APT_DIR);
    let list_dir = apt.join("sources.list.d");
    let mut paths = files_with_extension(&list_dir, "sources");
    paths.push(apt.join("sources.list"));
    paths.extend(files_with_extension(&list_dir, "list"));
    for path in &paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let found = if path.extension().is_some_and(|e| e == "sources") {
            from_deb822(&text, suite, "main")
        } else {
            from_one_line(&text, suite, "main")
        };
        if let Some(url) = found {
            return Ok(url);
        }
    }
    bail!(
        "no apt source for `{suite} main` in {dir}/sources.list.d/*.sources or {dir}/sources.list: \
         the rootfs is built from the Debian mirror this machine's apt uses; add one there",
        dir = APT_DIR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb deb-src
# a comment
URIs: http://security.example.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://disabled.example.invalid/debian
Suites: bookworm
Components: main
Enabled: no

types: deb
uris: http://apt.example.invalid/debian
  http://second.example.invalid/debian
suites: bookworm bookworm-updates
components: contrib
 main non-free
";

    #[test]
    fn deb822_picks_the_enabled_stanza_with_suite_and_component() {
        assert_eq!(
            from_deb822(DEB822, "bookworm", "main").as_deref(),
            Some("http://apt.example.invalid/debian")
        );
        assert_eq!(
            from_deb822(DEB822, "bookworm-security", "main").as_deref(),
            Some("http://security.example.invalid/debian-security")
        );
        assert_eq!(from_deb822(DEB822, "trixie", "main"), None);
        assert_eq!(from_deb822(DEB822, "bookworm", "non-free-firmware"), None);
    }

    #[test]
    fn one_line_sources_skip_options_comments_and_other_suites() {
        let text = "\
# deb http://commented.example.invalid/debian bookworm main
deb-src http://src.example.invalid/debian bookworm main
deb http://apt.example.invalid/debian bookworm-updates main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://apt.example.invalid/debian bookworm contrib main # trailing
";
        assert_eq!(
            from_one_line(text, "bookworm", "main").as_deref(),
            Some("http://apt.example.invalid/debian")
        );
        assert_eq!(from_one_line(text, "bookworm", "non-free"), None);
    }
}
