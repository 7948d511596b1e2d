//! A handle to one claimed sandbox: commands, files, suspend and resume, deletion.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::v1beta1::{Sandbox as SandboxObject, SandboxOperatingMode};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use http_body_util::BodyDataStream;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Response};
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::io::AsyncRead;

use crate::claim::{delete_claim, describe};
use crate::command::{self, CommandResult, OutputStream, RunOptions};
use crate::connection::{LEGACY_PORT, REST_PORT, Target, Transport, select_pod_ip};
use crate::error::{Error, Result, chain, is_not_found};
use crate::files::{self, FileEntry};
use crate::http::{self, About, Body, Call, Route};
use crate::watch::{Step, watch_until};

/// How long `suspend` and `resume` wait for the Sandbox to get there (the Python SDK's
/// `wait_timeout`).
pub const MODE_TIMEOUT: Duration = Duration::from_secs(180);

/// A file's contents as they arrive.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One claimed sandbox (the Python SDK's `Sandbox`): run commands in it, move files in and out of
/// its `/workspace`, suspend and resume it, delete it.
///
/// Dropping the handle keeps the claim (and the sandbox); [`Sandbox::delete`] ends both.
/// [`SandboxClient::get_sandbox`](crate::SandboxClient::get_sandbox) makes a new handle to an
/// existing claim.
pub struct Sandbox {
    transport: Arc<Transport>,
    claim: String,
    namespace: String,
    name: String,
    /// For direct connections; re-read after `resume` (a resumed sandbox has a new pod).
    pod_ip: Mutex<Option<String>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("claim", &self.claim)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("pod_ip", &self.pod_ip())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    pub(crate) fn new(
        transport: Arc<Transport>,
        claim: String,
        namespace: String,
        name: String,
        pod_ips: &[String],
    ) -> Self {
        Self {
            transport,
            claim,
            namespace,
            name,
            pod_ip: Mutex::new(select_pod_ip(pod_ips)),
        }
    }

    /// The SandboxClaim's name.
    pub fn claim_name(&self) -> &str {
        &self.claim
    }

    /// The Sandbox's name (what the router's `X-Sandbox-ID` names; with a warm pool, the adopted
    /// member's name, not the claim's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace of the claim and the Sandbox.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod IP this handle last saw (IPv4 preferred); `None` while suspended.
    pub fn pod_ip(&self) -> Option<String> {
        self.pod_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn about<'a>(&'a self, path: Option<&'a str>) -> About<'a> {
        About {
            namespace: &self.namespace,
            sandbox: &self.name,
            path,
        }
    }

    fn target<'a>(&'a self, pod_ip: Option<&'a str>) -> Target<'a> {
        Target {
            namespace: &self.namespace,
            name: &self.name,
            pod_ip,
        }
    }

    async fn route(&self, port: u16) -> Result<Route> {
        let pod_ip = self.pod_ip();
        let target = self.target(pod_ip.as_deref());
        self.transport.route(target, port).await
    }

    async fn grpc(&self) -> Result<(tonic::transport::Channel, Route)> {
        let pod_ip = self.pod_ip();
        let target = self.target(pod_ip.as_deref());
        self.transport.grpc(target).await
    }

    /// Sends one request to `port`, about `path` if it concerns a file.
    async fn send(
        &self,
        port: u16,
        call: Call<'_>,
        path: Option<&str>,
    ) -> Result<(Response<Incoming>, Route)> {
        let route = self.route(port).await?;
        let response = http::send(self.transport.http(), &route, call, self.about(path)).await?;
        Ok((response, route))
    }

    /// Runs `command` (a shell command line) to completion and returns its output and exit code
    /// (the Python SDK's `commands.run`). A non-zero exit is a result, not an error; so is a
    /// command the runtime killed for its timeout ([`CommandResult::timed_out`], exit code 124).
    ///
    /// Without `env` and `cwd` this is the legacy `POST /execute` (port 8888), as the SDK's
    /// default runtime does; with either, `ProcessService.Execute` over gRPC (port 9090).
    pub async fn run(&self, command: &str, options: &RunOptions) -> Result<CommandResult> {
        options.validate()?;
        if options.needs_grpc() {
            let (channel, route) = self.grpc().await?;
            return command::execute_grpc(channel, &route, command, options).await;
        }
        let route = self.route(LEGACY_PORT).await?;
        let http = self.transport.http();
        command::execute_legacy(http, &route, command, options, self.about(None)).await
    }

    /// Starts `command` (a shell command line) and streams its stdout and stderr as they are
    /// written, then its exit code ([`OutputEvent`](crate::OutputEvent)), through
    /// `ProcessService.Start` over gRPC (port 9090; through the router as prior-knowledge HTTP/2).
    /// Dropping the stream kills the command.
    pub async fn run_streaming(&self, command: &str, options: &RunOptions) -> Result<OutputStream> {
        options.validate()?;
        let (channel, route) = self.grpc().await?;
        command::start(channel, &route, command, options).await
    }

    /// Writes `content` to `path` (relative to `/workspace`), creating parent directories; the
    /// write is atomic (a reader sees the old or the new file).
    pub async fn write(&self, path: &str, content: impl Into<Bytes>) -> Result<()> {
        self.put(path, http::full(content)).await
    }

    /// Writes what `reader` gives to `path`, streamed (never held whole): for large files.
    pub async fn write_from(
        &self,
        path: &str,
        reader: impl AsyncRead + Send + 'static,
    ) -> Result<()> {
        self.put(path, http::streamed(reader)).await
    }

    async fn put(&self, path: &str, body: Body) -> Result<()> {
        let call = Call {
            method: Method::PUT,
            path: files::rest_path(path),
            content_type: Some("application/octet-stream"),
            body,
        };
        self.send(REST_PORT, call, Some(path)).await.map(drop)
    }

    /// The contents of the file at `path`, whole.
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        let (response, route) = self.get_file(path).await?;
        http::read_body(response, &route).await
    }

    /// The contents of the file at `path` as they arrive (use
    /// `tokio_util::io::StreamReader` for an `AsyncRead`): for large files.
    pub async fn read_stream(&self, path: &str) -> Result<ByteStream> {
        let (response, route) = self.get_file(path).await?;
        let stream =
            BodyDataStream::new(response.into_body()).map_err(move |err| Error::Connection {
                target: route.base.clone(),
                message: chain(&err),
            });
        Ok(Box::pin(stream))
    }

    async fn get_file(&self, path: &str) -> Result<(Response<Incoming>, Route)> {
        let (response, route) = self.get(path).await?;
        if http::is_json(&response) {
            return Err(Error::IsADirectory {
                path: path.to_owned(),
            });
        }
        Ok((response, route))
    }

    async fn get(&self, path: &str) -> Result<(Response<Incoming>, Route)> {
        let call = Call {
            method: Method::GET,
            path: files::rest_path(path),
            content_type: None,
            body: http::empty(),
        };
        self.send(REST_PORT, call, Some(path)).await
    }

    /// The entries of directory `dir` (`""` for `/workspace` itself), sorted by name.
    pub async fn list(&self, dir: &str) -> Result<Vec<FileEntry>> {
        let (response, route) = self.get(dir).await?;
        if !http::is_json(&response) {
            return Err(Error::NotADirectory {
                path: dir.to_owned(),
            });
        }
        files::parse_listing(&http::read_body(response, &route).await?)
    }

    /// Whether something exists at `path`. Asks the legacy `GET /exists/…` (port 8888), whose
    /// JSON answer cannot be mistaken for the router's 404 for an unknown sandbox (a `HEAD` on
    /// `/v1/files/…` answers both without a body).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let call = Call {
            method: Method::GET,
            path: files::exists_path(path),
            content_type: None,
            body: http::empty(),
        };
        let (response, route) = self.send(LEGACY_PORT, call, Some(path)).await?;
        files::parse_exists(&http::read_body(response, &route).await?)
    }

    /// Removes the file or directory at `path`; a non-empty directory only with `recursive` (else
    /// [`Error::Request`] with status 409). Removing `""` empties `/workspace`.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<()> {
        let mut target = files::rest_path(path);
        if recursive {
            target.push_str("?recursive=true");
        }
        let call = Call {
            method: Method::DELETE,
            path: target,
            content_type: None,
            body: http::empty(),
        };
        self.send(REST_PORT, call, Some(path)).await.map(drop)
    }

    /// Suspends the sandbox: sets the Sandbox's `spec.operatingMode` to `Suspended` (claims have
    /// no such field, so the bound Sandbox is patched) and waits until its `Suspended` condition
    /// is True: the pod is gone, its volumes and Service are kept. Files in the container's own
    /// filesystem (not on a volume) are lost.
    pub async fn suspend(&self) -> Result<()> {
        let generation = self.set_mode(SandboxOperatingMode::Suspended).await?;
        let what = format!("sandbox {}/{} to be Suspended", self.namespace, self.name);
        self.wait_condition(types::SUSPENDED, generation, what, |_| Some(()))
            .await?;
        *self.pod_ip.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// Resumes the sandbox: sets `spec.operatingMode` back to `Running` and waits until it is Ready
    /// again, on a new pod (whose IP this handle then uses).
    pub async fn resume(&self) -> Result<()> {
        let generation = self.set_mode(SandboxOperatingMode::Running).await?;
        let what = format!("sandbox {}/{} to be Ready again", self.namespace, self.name);
        let pod_ip = self
            .wait_condition(types::READY, generation, what, |sandbox| {
                sandbox
                    .status
                    .as_ref()
                    .and_then(|s| select_pod_ip(&s.pod_ips))
            })
            .await?;
        *self.pod_ip.lock().unwrap_or_else(PoisonError::into_inner) = Some(pod_ip);
        Ok(())
    }

    fn sandboxes(&self) -> Api<SandboxObject> {
        Api::namespaced(self.transport.kube().clone(), &self.namespace)
    }

    /// Patches `spec.operatingMode`; returns the Sandbox's new generation.
    async fn set_mode(&self, mode: SandboxOperatingMode) -> Result<i64> {
        let patch = serde_json::json!({ "spec": { "operatingMode": mode } });
        let patched = self
            .sandboxes()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|err| self.sandbox_error(&err, "setting the operating mode of"))?;
        Ok(patched.metadata.generation.unwrap_or_default())
    }

    fn sandbox_error(&self, err: &kube::Error, doing: &str) -> Error {
        if is_not_found(err) {
            return self.sandbox_gone();
        }
        Error::kube(
            format!("{doing} Sandbox {}/{}", self.namespace, self.name),
            err,
        )
    }

    fn sandbox_gone(&self) -> Error {
        Error::SandboxNotFound {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Waits until the Sandbox's `type_` condition is True as computed for `generation` or later
    /// (an older True is the state before the patch) and `extract` finds what it needs.
    async fn wait_condition<T>(
        &self,
        type_: &str,
        generation: i64,
        what: String,
        extract: impl Fn(&SandboxObject) -> Option<T>,
    ) -> Result<T> {
        let decide = |sandbox: &SandboxObject| {
            let condition = sandbox
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
            let current = condition.is_some_and(|c| {
                c.status == "True" && c.observed_generation.is_none_or(|g| g >= generation)
            });
            match current.then(|| extract(sandbox)).flatten() {
                Some(value) => Step::Done(value),
                None => Step::Wait(describe(condition)),
            }
        };
        watch_until(
            &self.sandboxes(),
            &self.name,
            what,
            MODE_TIMEOUT,
            || self.sandbox_gone(),
            decide,
        )
        .await
    }

    /// Deletes the claim, and with it the sandbox (the Python SDK's `terminate`); a claim already
    /// gone is not an error.
    pub async fn delete(self) -> Result<()> {
        delete_claim(self.transport.kube(), &self.namespace, &self.claim, None).await
    }
}
