//! Files: sandboxd's REST API on port 8080 (`/v1/files/…`: streamed reads and writes, listings,
//! deletes), and the legacy `/exists/…` on port 8888, whose JSON answer tells a missing file from
//! a router's "no such sandbox" (a `HEAD` answer has no body to tell them apart).

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::error::{Error, Result, one_line};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// One entry of a directory listing (the Python SDK's `FileEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name (no directory part).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// File or directory.
    pub kind: FileKind,
    /// When it last changed.
    pub modified: Timestamp,
    /// Its permission bits in octal, e.g. `0644`.
    pub mode: String,
}

/// A sandboxd `DirectoryListing`.
#[derive(Deserialize)]
struct Listing {
    entries: Vec<WireEntry>,
}

#[derive(Deserialize)]
struct WireEntry {
    name: String,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
    modified_at: String,
    #[serde(default)]
    mode: String,
}

/// The answer of `GET /exists/{path}`.
#[derive(Deserialize)]
struct Exists {
    exists: bool,
}

/// The entries of a listing answer, skipping kinds other than file and directory (as the Python
/// SDK does).
pub(crate) fn parse_listing(body: &[u8]) -> Result<Vec<FileEntry>> {
    let unreadable = |why: String| {
        Error::Protocol(format!(
            "directory listing {:?}: {why}",
            one_line(&String::from_utf8_lossy(body))
        ))
    };
    let listing: Listing =
        serde_json::from_slice(body).map_err(|err| unreadable(err.to_string()))?;
    let mut entries = Vec::with_capacity(listing.entries.len());
    for entry in listing.entries {
        let kind = match entry.kind.as_str() {
            "file" => FileKind::File,
            "directory" => FileKind::Directory,
            _ => continue,
        };
        let modified = entry
            .modified_at
            .parse()
            .map_err(|err| unreadable(format!("modified_at {:?}: {err}", entry.modified_at)))?;
        entries.push(FileEntry {
            name: entry.name,
            size: entry.size,
            kind,
            modified,
            mode: entry.mode,
        });
    }
    Ok(entries)
}

/// The `exists` of an `/exists` answer.
pub(crate) fn parse_exists(body: &[u8]) -> Result<bool> {
    serde_json::from_slice::<Exists>(body)
        .map(|answer| answer.exists)
        .map_err(|err| {
            Error::Protocol(format!(
                "/exists answered {:?}: {err}",
                one_line(&String::from_utf8_lossy(body))
            ))
        })
}

/// `path` as one URL path segment, as the Python SDK sends it: each `/`-separated part
/// percent-encoded, `.` and `..` parts encoded whole (so nothing on the way resolves them: the
/// runtime decides what is inside its root), parts joined by `%2F`.
pub(crate) fn encode_path(path: &str) -> String {
    let parts: Vec<String> = path
        .split('/')
        .map(|part| match part {
            "." => "%2E".to_owned(),
            ".." => "%2E%2E".to_owned(),
            part => encode_part(part),
        })
        .collect();
    parts.join("%2F")
}

/// Percent-encodes every byte of `part` but the URL's unreserved characters.
fn encode_part(part: &str) -> String {
    let mut encoded = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The sandboxd REST path of `path`.
pub(crate) fn rest_path(path: &str) -> String {
    format!("/v1/files/{}", encode_path(path))
}

/// The legacy `/exists` path of `path`.
pub(crate) fn exists_path(path: &str) -> String {
    format!("/exists/{}", encode_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_one_encoded_segment() {
        assert_eq!(rest_path("data/input.csv"), "/v1/files/data%2Finput.csv");
        assert_eq!(
            rest_path("/workspace/a b/ü?#"),
            "/v1/files/%2Fworkspace%2Fa%20b%2F%C3%BC%3F%23"
        );
        assert_eq!(
            rest_path("../etc/./passwd"),
            "/v1/files/%2E%2E%2Fetc%2F%2E%2Fpasswd"
        );
        assert_eq!(rest_path(""), "/v1/files/");
        assert_eq!(exists_path("a/b.txt"), "/exists/a%2Fb.txt");
        assert_eq!(encode_path("..."), "...");
    }

    #[test]
    fn listings_read_into_entries() {
        let body = br#"{"path": "data", "entries": [
            {"name": "a.bin", "size": 4194304, "type": "file", "modified_at": "2030-01-02T03:04:05Z", "mode": "0644"},
            {"name": "sub", "size": 4096, "type": "directory", "modified_at": "2030-01-02T03:04:05.5Z", "mode": "0755"},
            {"name": "fifo", "size": 0, "type": "other", "modified_at": "x"}
        ]}"#;
        let entries = parse_listing(body).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            FileEntry {
                name: "a.bin".into(),
                size: 4 * 1024 * 1024,
                kind: FileKind::File,
                modified: "2030-01-02T03:04:05Z".parse().unwrap(),
                mode: "0644".into(),
            }
        );
        assert_eq!(entries[1].kind, FileKind::Directory);
        assert!(matches!(parse_listing(b"[]"), Err(Error::Protocol(_))));
        let bad_time = br#"{"entries": [{"name": "a", "size": 1, "type": "file", "modified_at": "yesterday"}]}"#;
        assert!(matches!(parse_listing(bad_time), Err(Error::Protocol(_))));
    }

    #[test]
    fn exists_answers_read_into_bools() {
        assert!(parse_exists(br#"{"path": "a", "exists": true}"#).unwrap());
        assert!(!parse_exists(br#"{"path": "a", "exists": false}"#).unwrap());
        assert!(matches!(parse_exists(b"ok"), Err(Error::Protocol(_))));
    }
}
