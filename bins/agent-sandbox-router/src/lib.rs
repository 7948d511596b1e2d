//! # agent-sandbox-router: one entry point to every sandbox
//!
//! An HTTP reverse proxy behind Service `sandbox-router-svc:8080` in `agent-sandbox-system`
//! (label `app: sandbox-router`, which the managed NetworkPolicy of a SandboxTemplate admits).
//! Upstream's SDKs reach it through `kubectl port-forward` and name their sandbox in headers.
//! `docs/router.md` describes the contract, the flags, the SSRF guard, the metrics and where this
//! router differs from upstream's.
//!
//! * [`headers`]: the `X-Sandbox-*` contract (pure).
//! * [`catalog`]: the Sandboxes and Sandbox pods known, and the choice of target (pure);
//!   [`watch`] keeps it current from two watches, so no request calls the API server.
//! * [`guard`]: addresses never connected to (pure).
//! * [`proxy`]: one request: own endpoints, authentication ([`auth`]), forwarding with
//!   connection-only retries ([`dial`]), streaming, upgrades and HTTP/2.
//! * [`server`]: flags, start-up, the listener; [`metrics`]: what `/metrics` shows.
//!
//! Test seam: [`proxy::Proxy::new`] takes the [`catalog::Catalog`] it reads. The binary fills
//! it from the watches; the in-process tests (`tests/`) fill it by hand with records pointing at
//! local servers, and use [`guard::Guard::allowing_loopback_for_tests`] so those servers can be
//! on 127.0.0.1.

pub mod auth;
pub mod catalog;
pub mod dial;
pub mod guard;
pub mod headers;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod watch;
