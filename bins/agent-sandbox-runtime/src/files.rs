//! File operations both surfaces use: atomic streamed writes, directory listings, deletes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::confine::Root;

/// One directory entry, with symbolic links followed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's name in its directory.
    pub name: String,
    /// Its size in bytes (of the target, for a link).
    pub size: u64,
    /// Whether it is (or links to) a directory.
    pub is_dir: bool,
    /// Its modification time.
    pub modified: SystemTime,
    /// Its permission bits.
    pub mode: u32,
}

/// Lists a directory sorted by name. Links that dangle or lead outside the root are left out.
pub async fn list(root: &Root, dir: &Path) -> io::Result<Vec<Entry>> {
    let mut reader = tokio::fs::read_dir(dir).await?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry().await? {
        let path = entry.path();
        let link = entry
            .file_type()
            .await
            .map(|t| t.is_symlink())
            .unwrap_or(false);
        if link {
            match tokio::fs::canonicalize(&path).await {
                Ok(target) if target.starts_with(root.path()) => {}
                _ => continue,
            }
        }
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        use std::os::unix::fs::PermissionsExt;
        entries.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            is_dir: meta.is_dir(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Why an atomic write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The client's body broke off.
    #[error("reading the request body failed: {0}")]
    Body(String),
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `body` to `target` atomically: parents are created, the bytes go to a temporary file
/// in the same directory, which gets `mode` (0644 by default), is synced and renamed over the
/// target. Readers see the old file or the new one, never a part. Returns the bytes written.
pub async fn write_atomic<S, E>(
    target: &Path,
    body: S,
    mode: Option<u32>,
) -> Result<u64, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if tokio::fs::metadata(target).await.is_ok_and(|m| m.is_dir()) {
        return Err(
            io::Error::new(io::ErrorKind::IsADirectory, "the target is a directory").into(),
        );
    }
    let parent = target.parent().unwrap_or(Path::new("/"));
    tokio::fs::create_dir_all(parent).await?;
    let temp = temp_path(parent);
    let result = write_temp(&temp, body, mode.unwrap_or(0o644)).await;
    let result = match result {
        Ok(written) => tokio::fs::rename(&temp, target)
            .await
            .map(|()| written)
            .map_err(WriteError::from),
        Err(err) => Err(err),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

fn temp_path(dir: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    dir.join(format!(
        ".agent-sandbox-tmp-{}-{n}-{nanos}",
        std::process::id()
    ))
}

async fn write_temp<S, E>(temp: &Path, mut body: S, mode: u32) -> Result<u64, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .await?;
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| WriteError::Body(err.to_string()))?;
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .await?;
    file.sync_all().await?;
    Ok(written)
}

/// Deletes `path`. A directory needs `recursive` unless empty; the root itself is never removed,
/// only emptied (and only with `recursive`). A symbolic link is removed, not what it points to.
pub async fn delete(root: &Root, path: &Path, recursive: bool) -> io::Result<()> {
    let meta = tokio::fs::symlink_metadata(path).await?;
    if path == root.path() {
        let mut reader = tokio::fs::read_dir(path).await?;
        let mut children = Vec::new();
        while let Some(entry) = reader.next_entry().await? {
            children.push(entry.path());
        }
        if children.is_empty() {
            return Ok(());
        }
        if !recursive {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                "the root directory is not empty (recursive=true empties it)",
            ));
        }
        for child in children {
            remove_any(&child).await?;
        }
        return Ok(());
    }
    if meta.is_dir() {
        if recursive {
            tokio::fs::remove_dir_all(path).await
        } else {
            tokio::fs::remove_dir(path).await.map_err(|err| {
                if err.kind() == io::ErrorKind::DirectoryNotEmpty {
                    io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        "the directory is not empty (recursive=true removes it)",
                    )
                } else {
                    err
                }
            })
        }
    } else {
        tokio::fs::remove_file(path).await
    }
}

async fn remove_any(path: &Path) -> io::Result<()> {
    let meta = tokio::fs::symlink_metadata(path).await?;
    if meta.is_dir() {
        tokio::fs::remove_dir_all(path).await
    } else {
        tokio::fs::remove_file(path).await
    }
}

/// Resolves the directory holding `raw` through the root and joins the last name unresolved, so
/// that an operation on a symbolic link acts on the link itself.
pub fn resolve_entry(root: &Root, raw: &str) -> Result<PathBuf, crate::confine::ConfineError> {
    let parts = crate::confine::normalize(root.path(), raw)?;
    match parts.split_last() {
        None => Ok(root.path().to_path_buf()),
        Some((last, parents)) => Ok(root.resolve(&parents.join("/"))?.join(last)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn atomic_write_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let target = root.path().join("a/b/c.txt");
        let n = write_atomic(&target, body(&[b"hel", b"lo"]), Some(0o600))
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        let entries = list(&root, &root.path().join("a/b")).await.unwrap();
        assert_eq!(entries.len(), 1, "no temporary file is left behind");
        assert_eq!(entries[0].mode, 0o600);
        let err = write_atomic(&root.path().join("a"), body(&[b"x"]), None)
            .await
            .unwrap_err();
        assert!(matches!(err, WriteError::Io(e) if e.kind() == io::ErrorKind::IsADirectory));
        let err = delete(&root, &root.path().join("a"), false)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::DirectoryNotEmpty);
        delete(&root, root.path(), true).await.unwrap();
        assert!(root.path().is_dir());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
