//! Path confinement: every path a client names is resolved inside the root directory, or refused.
//!
//! Two steps. [`normalize`] is pure: it turns the client's path into components relative to the
//! root (a leading `/` and a leading copy of the root itself are both accepted and re-rooted, `.` is
//! dropped, `..` pops a component) and refuses a path that would climb above the root or that
//! contains a NUL byte. [`Root::resolve`] then follows symbolic links on the file system: it walks
//! up to the nearest ancestor that exists, canonicalizes it, appends the components that do not
//! exist yet, and refuses the result unless it is the root or lies below it. Nothing is created or
//! changed by either step, so a refused path touches nothing.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused or could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfineError {
    /// The path leaves the root directory (by `..` or through a symbolic link).
    #[error("path {0:?} is outside the root directory")]
    Escape(String),
    /// The path cannot name a file (NUL byte).
    #[error("path {0:?} is not a valid path")]
    Invalid(String),
    /// A symbolic link on the way points nowhere, so where the path leads cannot be checked.
    #[error("path {0:?} goes through a dangling symbolic link")]
    Dangling(String),
    /// The file system refused to tell (permissions, I/O error).
    #[error("cannot resolve path {path:?}: {message}")]
    Io {
        /// The client's path.
        path: String,
        /// The operating system's message.
        message: String,
    },
}

/// Turns a client path into normal components relative to the root, without touching the disk.
///
/// `root` is the canonical root directory; a path that starts with it (`/workspace/a` when the
/// root is `/workspace`) is taken relative to it, and any other leading `/` is dropped, so
/// `/etc/passwd` names `<root>/etc/passwd`. The empty path and `/` name the root itself.
pub fn normalize(root: &Path, raw: &str) -> Result<Vec<String>, ConfineError> {
    if raw.contains('\0') {
        return Err(ConfineError::Invalid(raw.to_owned()));
    }
    let path = Path::new(raw);
    let relative = match path.strip_prefix(root) {
        Ok(rest) if path.is_absolute() && root.is_absolute() => rest,
        _ => path,
    };
    let mut parts: Vec<String> = Vec::new();
    for component in relative.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(ConfineError::Escape(raw.to_owned()));
                }
            }
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
        }
    }
    Ok(parts)
}

/// The root directory every request is confined to.
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
}

impl Root {
    /// Creates the directory if it is missing and canonicalizes it. An empty path is refused so
    /// the confinement can never silently become `/`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        if dir.as_os_str().is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root directory must not be empty",
            ));
        }
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            canonical: std::fs::canonicalize(dir)?,
        })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Resolves a client path to an absolute path inside the root, following symbolic links.
    ///
    /// The returned path may not exist (its missing tail is appended to the nearest existing,
    /// canonical ancestor); every existing part of it has been checked to stay inside the root.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, ConfineError> {
        let parts = normalize(&self.canonical, raw)?;
        // Find the longest prefix that exists, canonicalize it, append the rest.
        let mut existing = parts.len();
        let resolved = loop {
            let candidate: PathBuf = parts[..existing]
                .iter()
                .fold(self.canonical.clone(), |acc, part| acc.join(part));
            match std::fs::canonicalize(&candidate) {
                Ok(canonical) => break canonical,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    if std::fs::symlink_metadata(&candidate).is_ok() {
                        return Err(ConfineError::Dangling(raw.to_owned()));
                    }
                    // The root itself always exists; the loop ends at `existing == 0` at worst.
                    if existing == 0 {
                        return Err(ConfineError::Io {
                            path: raw.to_owned(),
                            message: "the root directory is gone".to_owned(),
                        });
                    }
                    existing -= 1;
                }
                Err(err) => {
                    return Err(ConfineError::Io {
                        path: raw.to_owned(),
                        message: err.to_string(),
                    });
                }
            }
        };
        if !resolved.starts_with(&self.canonical) {
            return Err(ConfineError::Escape(raw.to_owned()));
        }
        Ok(parts[existing..]
            .iter()
            .fold(resolved, |acc, part| acc.join(part)))
    }

    /// The path relative to the root, for messages and listings (`""` is the root).
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.canonical)
            .map(|rest| rest.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalize_examples() {
        let root = Path::new("/workspace");
        assert_eq!(normalize(root, "").unwrap(), Vec::<String>::new());
        assert_eq!(normalize(root, "/").unwrap(), Vec::<String>::new());
        assert_eq!(normalize(root, "a/./b/../c").unwrap(), vec!["a", "c"]);
        assert_eq!(normalize(root, "/workspace/a").unwrap(), vec!["a"]);
        assert_eq!(
            normalize(root, "/etc/passwd").unwrap(),
            vec!["etc", "passwd"]
        );
        assert_eq!(
            normalize(root, "workspace/a").unwrap(),
            vec!["workspace", "a"]
        );
        assert!(matches!(
            normalize(root, ".."),
            Err(ConfineError::Escape(_))
        ));
        assert!(matches!(
            normalize(root, "a/../../b"),
            Err(ConfineError::Escape(_))
        ));
        assert!(matches!(
            normalize(root, "/workspace/../x"),
            Err(ConfineError::Escape(_))
        ));
        assert!(matches!(
            normalize(root, "a\0b"),
            Err(ConfineError::Invalid(_))
        ));
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just(String::new()),
            "[a-z]{1,3}",
        ]
    }

    proptest! {
        /// Whatever the client sends, a normalized path never contains `..` and never climbs out.
        #[test]
        fn normalize_never_escapes(segments in proptest::collection::vec(segment(), 0..12), absolute in any::<bool>()) {
            let raw = format!("{}{}", if absolute { "/" } else { "" }, segments.join("/"));
            let root = Path::new("/workspace");
            // A lexical model: the depth below the root never goes negative.
            let mut depth: i64 = 0;
            let mut escapes = false;
            for s in &segments {
                match s.as_str() {
                    ".." => { depth -= 1; if depth < 0 { escapes = true; break; } }
                    "" | "." => {}
                    _ => depth += 1,
                }
            }
            match normalize(root, &raw) {
                Ok(parts) => {
                    prop_assert!(!escapes);
                    prop_assert_eq!(parts.len() as i64, depth);
                    prop_assert!(parts.iter().all(|p| p != ".." && p != "." && !p.is_empty() && !p.contains('/')));
                }
                Err(ConfineError::Escape(_)) => prop_assert!(escapes),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// On a real tree with a symbolic link to outside, every resolved path is inside the root.
        #[test]
        fn resolve_stays_inside(segments in proptest::collection::vec(prop_oneof![segment(), Just("out".to_owned()), Just("in".to_owned())], 0..6)) {
            let (_dir, root) = tree();
            let raw = segments.join("/");
            if let Ok(path) = root.resolve(&raw) {
                prop_assert!(path.starts_with(root.path()), "{raw} resolved to {path:?}");
            }
        }
    }

    /// A temporary root with `sub/`, `in -> sub` and `out -> <outside>`.
    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(root_dir.join("sub"), root_dir.join("in")).unwrap();
        std::os::unix::fs::symlink(&outside, root_dir.join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), root_dir.join("dangling")).unwrap();
        let root = Root::open(&root_dir).unwrap();
        (dir, root)
    }

    #[test]
    fn resolve_follows_links_and_refuses_escapes() {
        let (_dir, root) = tree();
        let base = root.path().to_path_buf();
        assert_eq!(root.resolve("").unwrap(), base);
        assert_eq!(
            root.resolve("in/new/file").unwrap(),
            base.join("sub/new/file")
        );
        assert_eq!(root.resolve("missing/a").unwrap(), base.join("missing/a"));
        assert!(matches!(root.resolve("out"), Err(ConfineError::Escape(_))));
        assert!(matches!(
            root.resolve("out/secret"),
            Err(ConfineError::Escape(_))
        ));
        assert!(matches!(
            root.resolve("out/new/file"),
            Err(ConfineError::Escape(_))
        ));
        assert!(matches!(
            root.resolve("dangling"),
            Err(ConfineError::Dangling(_))
        ));
        assert!(matches!(
            root.resolve("dangling/x"),
            Err(ConfineError::Dangling(_))
        ));
        let absolute = format!("{}/sub", base.display());
        assert_eq!(root.resolve(&absolute).unwrap(), base.join("sub"));
    }

    #[test]
    fn empty_root_is_refused() {
        assert!(Root::open(Path::new("")).is_err());
    }
}
