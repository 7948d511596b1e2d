//! Builds one image layer (an uncompressed tar) from a list of directories, files and symlinks.
//!
//! The tar is deterministic: entries are sorted by path, every parent directory is present, and
//! modification times are zero, as are owner and group except for a directory given an owner, so the same entries always give the same bytes
//! (and therefore the same layer digest).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

/// Mode of the parent directories a layer creates without being asked.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    /// The bytes themselves (small generated files such as `/etc/passwd`).
    Bytes(Vec<u8>),
    /// A file on the host, read when the layer is built.
    Host(PathBuf),
}

/// One thing to put into a layer. Paths are relative to the image root: `bin/sh`, not `/bin/sh`.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory with the given permission bits (e.g. `0o1777` for `tmp`).
    Dir {
        /// Path inside the image.
        path: String,
        /// Permission bits, including sticky/setuid bits.
        mode: u32,
        /// User and group id (the same number) owning it: 0 except for a directory the image's
        /// non-root user must write, such as the runtime's `/workspace`.
        owner: u32,
    },
    /// A regular file.
    File {
        /// Path inside the image.
        path: String,
        /// The file's bytes.
        content: Content,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link; the target is stored as given (absolute targets resolve inside the image).
    Symlink {
        /// Path inside the image.
        path: String,
        /// What the link points to.
        target: String,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Self::Dir { path, .. } | Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// Checks that a path stays inside the image root and returns it without `.` components or a
/// trailing slash, so `etc/` and `etc` are the same entry.
fn normalize(path: &str) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .with_context(|| format!("layer path {path:?} is not UTF-8"))?,
            ),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                bail!("layer path {path:?} must be relative to the image root (no leading '/')")
            }
            Component::ParentDir => bail!("layer path {path:?} must not contain '..'"),
        }
    }
    if parts.is_empty() {
        bail!("layer path {path:?} names no file");
    }
    Ok(parts.join("/"))
}

/// A header with everything that would make the tar depend on the host or the clock set to zero.
fn header(kind: tar::EntryType, mode: u32, size: u64, owner: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(owner.into());
    header.set_gid(owner.into());
    header.set_mtime(0);
    header
}

/// Builds the layer tar. Parent directories are created with mode 0755 unless listed; a path listed
/// twice, or a path that must be a directory but is given as a file or link, is an error.
pub fn build(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    // Keyed by normalized path: BTreeMap order is the tar order, and a parent sorts before its children.
    let mut by_path: BTreeMap<String, Option<&Entry>> = BTreeMap::new();
    for entry in entries {
        let path = normalize(entry.path())?;
        for (i, _) in path.match_indices('/') {
            by_path.entry(path[..i].to_string()).or_insert(None);
        }
        if let Some(Some(_)) = by_path.insert(path.clone(), Some(entry)) {
            bail!("layer path {path:?} is listed twice");
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &by_path {
        let has_children = by_path
            .range(format!("{path}/")..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&format!("{path}/")));
        match entry {
            None | Some(Entry::Dir { .. }) => {
                let (mode, owner) = match entry {
                    Some(Entry::Dir { mode, owner, .. }) => (*mode, *owner),
                    _ => (IMPLICIT_DIR_MODE, 0),
                };
                let mut h = header(tar::EntryType::Directory, mode, 0, owner);
                builder
                    .append_data(&mut h, format!("{path}/"), std::io::empty())
                    .with_context(|| format!("adding directory {path}"))?;
            }
            Some(_) if has_children => {
                bail!("layer path {path:?} has entries below it, so it must be a directory")
            }
            Some(Entry::File { content, mode, .. }) => {
                let bytes = match content {
                    Content::Bytes(bytes) => bytes.clone(),
                    Content::Host(host) => std::fs::read(host)
                        .with_context(|| format!("reading {} for {path}", host.display()))?,
                };
                let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64, 0);
                builder
                    .append_data(&mut h, path, bytes.as_slice())
                    .with_context(|| format!("adding file {path}"))?;
            }
            Some(Entry::Symlink { target, .. }) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
                builder
                    .append_link(&mut h, path, target)
                    .with_context(|| format!("adding symlink {path} -> {target}"))?;
            }
        }
    }
    builder.into_inner().context("finishing the layer tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, type, mode, link target, contents) of every entry, in tar order.
    fn listing(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().to_string();
                let kind = entry.header().entry_type();
                let mode = entry.header().mode().unwrap();
                let target = entry
                    .link_name()
                    .unwrap()
                    .map(|t| t.to_string_lossy().to_string())
                    .unwrap_or_default();
                assert_eq!(entry.header().mtime().unwrap(), 0);
                // Only the owned directory of `owned_directory_keeps_its_owner` is not root's.
                if path != "workspace/" {
                    assert_eq!(entry.header().uid().unwrap(), 0);
                }
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                (path, kind, mode, target, data)
            })
            .collect()
    }

    fn file(path: &str, bytes: &[u8]) -> Entry {
        Entry::File {
            path: path.into(),
            content: Content::Bytes(bytes.to_vec()),
            mode: 0o644,
        }
    }

    #[test]
    fn parents_are_implicit_and_entries_sorted() {
        let tar = build(&[
            Entry::Symlink {
                path: "usr/bin/sh".into(),
                target: "/bin/busybox".into(),
            },
            file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            Entry::Dir {
                path: "tmp".into(),
                mode: 0o1777,
                owner: 0,
            },
        ])
        .unwrap();
        let got = listing(&tar);
        let paths: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        // Directories carry the conventional trailing slash.
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/passwd",
                "tmp/",
                "usr/",
                "usr/bin/",
                "usr/bin/sh"
            ]
        );
        assert_eq!(got[0].1, tar::EntryType::Directory);
        assert_eq!(got[0].2, 0o755);
        assert_eq!(got[1].4, b"root:x:0:0::/root:/bin/sh\n");
        assert_eq!(got[2].2, 0o1777);
        assert_eq!(got[5].1, tar::EntryType::Symlink);
        assert_eq!(got[5].3, "/bin/busybox");
    }

    #[test]
    fn explicit_directory_mode_wins_over_implicit_parent() {
        let tar = build(&[
            file("root/.profile", b""),
            Entry::Dir {
                path: "root/".into(),
                mode: 0o700,
                owner: 0,
            },
        ])
        .unwrap();
        let got = listing(&tar);
        assert_eq!(got[0].0, "root/");
        assert_eq!(got[0].2, 0o700);
    }

    #[test]
    fn owned_directory_keeps_its_owner() {
        let tar = build(&[Entry::Dir {
            path: "workspace".into(),
            mode: 0o755,
            owner: 1000,
        }])
        .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().uid().unwrap(), 1000);
        assert_eq!(entry.header().gid().unwrap(), 1000);
        assert_eq!(listing(&tar)[0].0, "workspace/");
    }

    #[test]
    fn same_entries_give_same_bytes_whatever_their_order() {
        let a = [file("b", b"2"), file("a/x", b"1")];
        let b = [file("a/x", b"1"), file("b", b"2")];
        assert_eq!(build(&a).unwrap(), build(&b).unwrap());
    }

    #[test]
    fn host_files_are_read() {
        let dir = std::env::temp_dir().join(format!("xtask-layer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = dir.join("pause");
        std::fs::write(&host, b"\x7fELF").unwrap();
        let tar = build(&[Entry::File {
            path: "pause".into(),
            content: Content::Host(host),
            mode: 0o755,
        }])
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let got = listing(&tar);
        assert_eq!(got[0].4, b"\x7fELF");
        assert_eq!(got[0].2, 0o755);
    }

    #[test]
    fn long_paths_and_link_targets_survive() {
        let long = format!("{}/file", "d".repeat(150));
        let target = format!("/{}", "t".repeat(150));
        let tar = build(&[
            file(&long, b"x"),
            Entry::Symlink {
                path: "link".into(),
                target: target.clone(),
            },
        ])
        .unwrap();
        let got = listing(&tar);
        assert!(got.iter().any(|e| e.0 == long));
        assert!(got.iter().any(|e| e.3 == target));
    }

    #[test]
    fn bad_paths_are_named_in_the_error() {
        for (path, why) in [
            ("/etc/passwd", "leading '/'"),
            ("etc/../../x", "'..'"),
            ("", "names no file"),
            ("./", "names no file"),
        ] {
            let err = build(&[file(path, b"")]).unwrap_err().to_string();
            assert!(err.contains(&format!("{path:?}")), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn duplicates_and_files_with_children_are_errors() {
        let err = build(&[file("a", b""), file("./a", b"")]).unwrap_err();
        assert!(err.to_string().contains("\"a\" is listed twice"), "{err}");
        let err = build(&[file("a", b""), file("a/b", b"")]).unwrap_err();
        assert!(err.to_string().contains("must be a directory"), "{err}");
    }
}
