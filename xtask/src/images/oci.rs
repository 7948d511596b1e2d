//! Writes an image as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) packed in one
//! tar, the form `ctr images import` reads. No registry and no container engine are involved.
//!
//! Everything is deterministic: gzip headers carry no time or file name, tar entries have mtime 0 and
//! owner 0, JSON is written in a fixed key order and the config's creation time is the epoch. The same
//! layers and config therefore always give the same digests, so an unchanged image imports as a no-op.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Bumped whenever this writer's output changes for the same input, so cached archives are rebuilt.
const FORMAT_VERSION: &str = "oci-archive-v1";

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The OS and CPU architecture an image runs on, in OCI (Go) spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: &'static str,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: &'static str,
}

impl Platform {
    /// The platform of this machine: images are built from host binaries and a host-arch rootfs.
    pub fn host() -> anyhow::Result<Self> {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => bail!("no OCI architecture name known for this host's {other:?}"),
        };
        Ok(Self {
            os: "linux",
            architecture,
        })
    }
}

/// The runtime part of an image config: what a container runs and how.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// `ENTRYPOINT`: the program and its fixed arguments.
    pub entrypoint: Vec<String>,
    /// `CMD`: default arguments, replaced by a pod's `args`.
    pub cmd: Vec<String>,
    /// `KEY=value` environment entries.
    pub env: Vec<String>,
    /// Working directory; the runtime's default (`/`) when `None`.
    pub working_dir: Option<String>,
    /// `uid:gid` (or a name) to run as; root when `None`.
    pub user: Option<String>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Ports the image listens on, as `8080/tcp`; informational only.
    pub exposed_ports: Vec<String>,
}

/// One layer's uncompressed tar.
#[derive(Debug, Clone)]
pub enum LayerSource {
    /// The tar in memory (small layers built by [`super::layer::build`]).
    Bytes(Vec<u8>),
    /// A tar file on disk (a whole root filesystem), streamed rather than loaded.
    File(PathBuf),
}

impl LayerSource {
    fn open(&self) -> anyhow::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Self::Bytes(bytes) => Box::new(bytes.as_slice()),
            Self::File(path) => Box::new(BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("opening layer {}", path.display()))?,
            )),
        })
    }
}

/// Everything that goes into one image archive.
#[derive(Debug, Clone)]
pub struct Image {
    /// Full reference including the tag, e.g. `localhost/agent-sandbox/busybox:local`.
    pub reference: String,
    /// Where the image runs.
    pub platform: Platform,
    /// Entrypoint, environment and the rest.
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<LayerSource>,
}

/// `sha256:<hex>` of some bytes.
fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The tag part of a reference: what follows the last ':' after the last '/'.
fn tag(reference: &str) -> anyhow::Result<&str> {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() && !reference.contains('@') => Ok(tag),
        _ => bail!("image reference {reference:?} needs an explicit tag, e.g. `{reference}:local`"),
    }
}

/// Reads a layer once, returning its diff_id (digest of the tar) and, when asked, its gzip bytes.
fn digest_layer(layer: &LayerSource, compress: bool) -> anyhow::Result<(String, Option<Vec<u8>>)> {
    let mut reader = layer.open()?;
    let mut hasher = Sha256::new();
    let mut gzip = compress.then(|| {
        GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::default())
    });
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).context("reading layer")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(gz) = gzip.as_mut() {
            gz.write_all(&buf[..n]).context("compressing layer")?;
        }
    }
    let diff_id = format!("sha256:{:x}", hasher.finalize());
    let compressed = gzip
        .map(|gz| gz.finish().context("compressing layer"))
        .transpose()?;
    Ok((diff_id, compressed))
}

/// The config blob: platform, runtime config and the layers' diff_ids.
fn config_blob(image: &Image, diff_ids: &[String]) -> anyhow::Result<Vec<u8>> {
    let c = &image.config;
    let mut runtime = serde_json::Map::new();
    if let Some(user) = &c.user {
        runtime.insert("User".into(), json!(user));
    }
    if !c.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, Value> = c
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        runtime.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !c.env.is_empty() {
        runtime.insert("Env".into(), json!(c.env));
    }
    if !c.entrypoint.is_empty() {
        runtime.insert("Entrypoint".into(), json!(c.entrypoint));
    }
    if !c.cmd.is_empty() {
        runtime.insert("Cmd".into(), json!(c.cmd));
    }
    if let Some(dir) = &c.working_dir {
        runtime.insert("WorkingDir".into(), json!(dir));
    }
    if !c.labels.is_empty() {
        runtime.insert("Labels".into(), json!(c.labels));
    }
    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": image.platform.architecture,
        "os": image.platform.os,
        "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    serde_json::to_vec(&config).context("serializing the image config")
}

/// A stable identity for the archive [`write_archive`] would produce: equal keys mean equal archives.
/// Costs one read of every layer but no compression, so a cached archive can be found cheaply.
pub fn content_key(image: &Image) -> anyhow::Result<String> {
    tag(&image.reference)?;
    let diff_ids = image
        .layers
        .iter()
        .map(|layer| digest_layer(layer, false).map(|(diff_id, _)| diff_id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut hasher = Sha256::new();
    for part in [
        FORMAT_VERSION.as_bytes(),
        image.reference.as_bytes(),
        &config_blob(image, &diff_ids)?,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// A descriptor (media type, digest, size) pointing at a blob.
fn descriptor(media_type: &str, digest: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

/// Appends one regular file, or a directory when `path` ends in '/', with fixed metadata.
fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    if path.ends_with('/') {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
    } else {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
    }
    header.set_size(bytes.len() as u64);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, path, bytes)
        .with_context(|| format!("writing {path} into the archive"))
}

/// Writes the image as an OCI layout tar. Compressed layers are held in memory while the archive is
/// written (blob names are their digests, known only after compressing); the project's layers are tens
/// of megabytes at most.
pub fn write_archive<W: Write>(image: &Image, out: W) -> anyhow::Result<()> {
    let tag = tag(&image.reference)?;
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for layer in &image.layers {
        let (diff_id, gz) = digest_layer(layer, true)?;
        diff_ids.push(diff_id);
        layers.push(gz.context("compressed layer")?);
    }
    let config = config_blob(image, &diff_ids)?;
    let config_digest = sha256_digest(&config);
    let layer_digests: Vec<String> = layers.iter().map(|gz| sha256_digest(gz)).collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, &config_digest, &config),
        "layers": layers
            .iter()
            .zip(&layer_digests)
            .map(|(gz, digest)| descriptor(MEDIA_LAYER_GZIP, digest, gz))
            .collect::<Vec<_>>(),
    }))?;
    let manifest_digest = sha256_digest(&manifest);
    let index = index(image, tag, &manifest_digest, &manifest)?;
    let blobs: Vec<(&String, &Vec<u8>)> = layer_digests
        .iter()
        .zip(&layers)
        .chain([(&config_digest, &config), (&manifest_digest, &manifest)])
        .collect();
    write_layout(out, &index, &blobs)
}

/// The layout's `index.json`: the one manifest, with the platform and the names importers give it.
fn index(image: &Image, tag: &str, digest: &str, manifest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut manifest_descriptor = descriptor(MEDIA_MANIFEST, digest, manifest);
    manifest_descriptor["platform"] = json!({
        "architecture": image.platform.architecture,
        "os": image.platform.os,
    });
    // containerd names the imported image after io.containerd.image.name; other OCI tools use ref.name.
    manifest_descriptor["annotations"] = json!({
        "io.containerd.image.name": image.reference,
        "org.opencontainers.image.ref.name": tag,
    });
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [manifest_descriptor],
    }))?)
}

/// Writes the OCI layout as a tar: `oci-layout`, `index.json`, then every blob by its digest.
fn write_layout<W: Write>(
    out: W,
    index: &[u8],
    blobs: &[(&String, &Vec<u8>)],
) -> anyhow::Result<()> {
    let mut tar = tar::Builder::new(out);
    append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append(&mut tar, "index.json", index)?;
    // Importers do not need the directories, but `tar x` then creates them with fixed modes.
    append(&mut tar, "blobs/", &[])?;
    append(&mut tar, "blobs/sha256/", &[])?;
    let mut written = BTreeSet::new();
    for (digest, bytes) in blobs {
        // The same layer listed twice is stored once.
        if written.insert((*digest).clone()) {
            let hex = digest.trim_start_matches("sha256:");
            append(&mut tar, &format!("blobs/sha256/{hex}"), bytes)?;
        }
    }
    tar.into_inner()
        .context("finishing the archive")?
        .flush()
        .context("flushing the archive")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::images::layer::{Content, Entry, build};

    const AMD64: Platform = Platform {
        os: "linux",
        architecture: "amd64",
    };

    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(path, text)| Entry::File {
                path: (*path).into(),
                content: Content::Bytes(text.as_bytes().to_vec()),
                mode: 0o644,
            })
            .collect();
        build(&entries).unwrap()
    }

    fn image(layers: Vec<LayerSource>) -> Image {
        Image {
            reference: "localhost/agent-sandbox/test:local".into(),
            platform: AMD64,
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into()],
                cmd: vec!["-c".into(), "true".into()],
                env: vec!["PATH=/bin".into()],
                working_dir: Some("/tmp".into()),
                user: Some("65532:65532".into()),
                labels: BTreeMap::from([("purpose".into(), "test".into())]),
                exposed_ports: vec!["8080/tcp".into()],
            },
            layers,
        }
    }

    fn archive(image: &Image) -> Vec<u8> {
        let mut out = Vec::new();
        write_archive(image, &mut out).unwrap();
        out
    }

    /// Every file in the archive by path, checking the fixed metadata on the way.
    fn files(archive: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut tar = tar::Archive::new(archive);
        tar.entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                assert_eq!(entry.header().mtime().unwrap(), 0);
                let path = entry.path().unwrap().to_string_lossy().to_string();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (path, bytes)
            })
            .collect()
    }

    /// Follows a descriptor to its blob, checking digest and size.
    fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
        let digest = descriptor["digest"].as_str().unwrap();
        let bytes = &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
        assert_eq!(sha256_digest(bytes), digest);
        assert_eq!(descriptor["size"].as_u64().unwrap(), bytes.len() as u64);
        bytes
    }

    fn manifest_digest(archive: &[u8]) -> String {
        let files = files(archive);
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn archive_round_trips_through_index_manifest_config_and_layers() {
        let layers = [
            layer(&[("etc/hostname", "sandbox\n")]),
            layer(&[("bin/hello", "hi")]),
        ];
        let img = image(layers.iter().cloned().map(LayerSource::Bytes).collect());
        let files = files(&archive(&img));

        let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");

        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1);
        let m = &manifests[0];
        assert_eq!(m["mediaType"], MEDIA_MANIFEST);
        assert_eq!(
            m["platform"],
            json!({"architecture": "amd64", "os": "linux"})
        );
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "localhost/agent-sandbox/test:local"
        );
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "local"
        );

        let manifest: Value = serde_json::from_slice(blob(&files, m)).unwrap();
        assert_eq!(manifest["config"]["mediaType"], MEDIA_CONFIG);
        let config: Value = serde_json::from_slice(blob(&files, &manifest["config"])).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["config"]["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(config["config"]["Cmd"], json!(["-c", "true"]));
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["WorkingDir"], "/tmp");
        assert_eq!(config["config"]["Labels"]["purpose"], "test");
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(config["rootfs"]["type"], "layers");

        let descriptors = manifest["layers"].as_array().unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(descriptors.len(), 2);
        assert_eq!(diff_ids.len(), 2);
        for ((descriptor, diff_id), original) in descriptors.iter().zip(diff_ids).zip(&layers) {
            assert_eq!(descriptor["mediaType"], MEDIA_LAYER_GZIP);
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(blob(&files, descriptor))
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(&tar, original);
            assert_eq!(diff_id.as_str().unwrap(), sha256_digest(&tar));
        }
        // oci-layout, index.json, blobs/, blobs/sha256/, two layers, config, manifest.
        assert_eq!(files.len(), 8);
    }

    #[test]
    fn same_input_gives_same_archive_and_key() {
        let a = image(vec![LayerSource::Bytes(layer(&[("a", "1")]))]);
        let b = image(vec![LayerSource::Bytes(layer(&[("a", "1")]))]);
        assert_eq!(archive(&a), archive(&b));
        assert_eq!(manifest_digest(&archive(&a)), manifest_digest(&archive(&b)));
        assert_eq!(content_key(&a).unwrap(), content_key(&b).unwrap());

        let mut changed = b.clone();
        changed.config.env.push("X=1".into());
        assert_ne!(
            manifest_digest(&archive(&a)),
            manifest_digest(&archive(&changed))
        );
        assert_ne!(content_key(&a).unwrap(), content_key(&changed).unwrap());

        let other_layer = image(vec![LayerSource::Bytes(layer(&[("a", "2")]))]);
        assert_ne!(content_key(&a).unwrap(), content_key(&other_layer).unwrap());
    }

    #[test]
    fn file_layers_equal_in_memory_layers() {
        let bytes = layer(&[("usr/lib/x", "payload")]);
        let path = std::env::temp_dir().join(format!("xtask-oci-{}.tar", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let from_file = archive(&image(vec![LayerSource::File(path.clone())]));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file, archive(&image(vec![LayerSource::Bytes(bytes)])));
    }

    #[test]
    fn a_layer_listed_twice_is_stored_once() {
        let bytes = layer(&[("a", "1")]);
        let img = image(vec![
            LayerSource::Bytes(bytes.clone()),
            LayerSource::Bytes(bytes),
        ]);
        assert_eq!(files(&archive(&img)).len(), 7);
    }

    #[test]
    fn references_need_a_tag() {
        assert_eq!(
            tag("localhost/agent-sandbox/busybox:local").unwrap(),
            "local"
        );
        assert_eq!(tag("localhost:5000/x:v1").unwrap(), "v1");
        for bad in ["localhost:5000/x", "x", "x:", "x@sha256:00"] {
            let err = tag(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
