//! What the local cluster's etcd holds: the only place that says at which version an object is stored
//! (the API server converts on every read). The local etcd serves plain HTTP on loopback; its JSON
//! gateway (`POST /v3/kv/range`) is read with a bare HTTP/1.0 request (so the answer is never chunked).

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The local etcd's client port (23790, shifted by `AGENT_SANDBOX_PORT_OFFSET` like every port of the
/// local cluster).
fn port() -> u16 {
    let offset: u16 = std::env::var("AGENT_SANDBOX_PORT_OFFSET")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    23790u16.saturating_add(offset)
}

/// The `apiVersion` an object is stored with in etcd, or `None` if etcd has no such key.
/// `group_resource` is e.g. `agents.x-k8s.io/sandboxes`.
pub async fn stored_api_version(
    group_resource: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let key = format!("/registry/{group_resource}/{namespace}/{name}");
    let body = json!({ "key": STANDARD.encode(&key) }).to_string();
    let request = format!(
        "POST /v3/kv/range HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port()))
        .await
        .context("connecting to the local etcd")?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .context("etcd sent no HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        bail!("etcd answered {status}");
    }
    let range: Value = serde_json::from_str(payload).context("parsing etcd's answer")?;
    let Some(value) = range["kvs"][0]["value"].as_str() else {
        return Ok(None);
    };
    let stored: Value = serde_json::from_slice(&STANDARD.decode(value)?)
        .with_context(|| format!("{key} is not stored as JSON"))?;
    Ok(stored["apiVersion"].as_str().map(str::to_owned))
}
