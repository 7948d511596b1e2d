//! # agent-sandbox-runtime: the daemon inside a sandbox
//!
//! One static binary that serves both in-sandbox APIs (the legacy one, and sandboxd's REST and gRPC) upstream's templates and SDKs use, so it can
//! replace either upstream image:
//!
//! ## The legacy python-runtime API (`--legacy-listen`, default `0.0.0.0:8888`)
//!
//! What the SDKs use by default (through the router, `X-Sandbox-Port: 8888`). Errors are JSON
//! `{"detail": "..."}`.
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /` | `{"status": "ok", …}`; 503 once shutdown began |
//! | `POST /execute` `{"command": "…", "timeout_seconds": s?}` | `{"stdout", "stderr", "exit_code", "timed_out"}`; 422 for a bad body, 413 when output passes the bound |
//! | `POST /upload` multipart, part `file` | the part's filename is the destination path, parents are created, the write is atomic |
//! | `GET /download/{path}` | the file's bytes (`application/octet-stream`, streamed) |
//! | `GET /list/{path}` | `[{"name", "size", "type": "file"\|"directory", "mod_time": epoch seconds}]`, sorted |
//! | `GET /exists/{path}` | `{"path", "exists"}` |
//!
//! ## sandboxd's REST API (`--rest-listen`, default `0.0.0.0:8080`)
//!
//! Errors are JSON `{"code", "message"}` with `PERMISSION_DENIED` (403), `NOT_FOUND` (404),
//! `INVALID_ARGUMENT` (400), `CONFLICT` (409), `INTERNAL` (500), `UNAVAILABLE` (503).
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /v1/files/{path}` | a file's bytes with `Content-Length`, `Last-Modified` and one-range `Range` support (206/416); a directory as `{"path", "entries": [{"name", "size", "type", "modified_at" (RFC 3339), "mode": "0644"}]}` |
//! | `HEAD /v1/files/{path}` | 200 with the length, or 404 |
//! | `PUT /v1/files/{path}?mode=0NNN` | raw body or multipart part `file`, written to a temporary file beside the target, chmod, fsync, rename: 204 |
//! | `DELETE /v1/files/{path}?recursive=bool` | 204; 409 for a non-empty directory without `recursive`; the root is emptied, never removed; a link is removed, not its target |
//! | `GET /v1/health` | `{"status": "ok", "uptime_seconds"}`; 503 once shutdown began |
//! | `GET /v1/metadata` | `{"env": {…}}`: variables named with `--metadata-env-prefix` (`SANDBOX_`), minus any whose name contains TOKEN, SECRET, PASSWORD, PASSWD, CRED, KEY, AUTH, BEARER, PRIVATE or CERT |
//!
//! ## sandboxd's process gRPC service (`--grpc-listen`, default `0.0.0.0:9090`)
//!
//! `process.v1.ProcessService` from `crates/client/proto/process/v1/process.proto`, written for this project
//! from the documented contract (see [`grpc`]); code generation uses protox, so no `protoc` is
//! needed. `Start` sends an init event with a virtual process id, then stdout/stderr chunks, then
//! the exit event; `Execute` runs to completion (bounded like `/execute`, `RESOURCE_EXHAUSTED`
//! past the bound); `WriteStdin` feeds or closes stdin; `SendSignal` sends SIGINT, SIGTERM or
//! SIGKILL to the process group. A start failure maps to `NOT_FOUND`, `PERMISSION_DENIED` or
//! `INTERNAL`, a `cwd` outside the root to `PERMISSION_DENIED`. `Start` with a `pty` runs the
//! process on a pseudo-terminal of that size, its output (stderr merged) as stdout events;
//! `ResizeTTY` changes the size and sends SIGWINCH to the group (`FAILED_PRECONDITION` without a
//! PTY). The PTY is not the process's controlling terminal, so `^C` written to it sends no SIGINT
//! (see [`grpc`] and [`pty`]). Messages, field
//! numbers, types and enum values match the descriptor of the stubs the Python SDK 1.0.8 ships
//! (compared field by field; the SDK's e2e suite runs `Execute` through them). A client deadline
//! (`grpc-timeout`, the SDK's `command_timeout`) ends the call and kills the process group.
//!
//! ## Paths
//!
//! Every path is confined to `--root-dir` (default `/workspace`, created if missing, empty refused),
//! see [`confine`]: a leading `/` or a leading copy of the root is re-rooted, `..` may not climb
//! above the root, and symbolic links are followed (walking up to the nearest existing ancestor
//! for paths that do not exist yet) and must stay inside. An escape is answered 403 and touches
//! nothing. Commands run in the root directory.
//!
//! ## Flags
//!
//! `--legacy-listen`, `--rest-listen`, `--grpc-listen`, `--root-dir`, `--exec-timeout` (seconds, default 300, also
//! read from `SANDBOX_EXEC_TIMEOUT_SECONDS`), `--max-output-bytes` (default 16 MiB per stream),
//! `--metadata-env-prefix`, `--shutdown-timeout` (seconds, default 10), `--log`. `--help` explains
//! each. All surfaces bind all addresses by default because the router reaches a sandbox at its
//! pod IP; the managed NetworkPolicy decides who may connect.
//!
//! On SIGTERM (or SIGINT) health answers 503, no new command starts, every running command's
//! process group gets SIGTERM and two seconds later SIGKILL, then open requests have
//! `--shutdown-timeout` to finish.
//!
//! ## What differs from upstream, on purpose
//!
//! - **Same answer on both surfaces.** Upstream's legacy runtime splits the command with shell
//!   quoting and runs it without a shell, sandboxd runs `/bin/sh -c`, so `echo a | wc -c` differs.
//!   Here a command of plain words runs directly (exactly what the shell would run) and anything
//!   with shell syntax runs through `/bin/sh -c` (see [`argv`]); a missing program gives exit code
//!   127 and an unrunnable one 126, as from the shell, instead of upstream's 1.
//! - **Bounded buffers.** A command's stdout and stderr are each kept up to `--max-output-bytes`;
//!   past it the whole process group is killed and the request fails with 413 and a message saying
//!   which stream and how to avoid it. Upstream buffers without limit. Uploads and downloads are
//!   streamed to and from disk, never held in memory; an `/execute` body is at most 1 MiB.
//! - **Timeouts kill the whole process group** and answer exit code 124, `timed_out: true` and
//!   a note on stderr. `/execute` takes the limit as `timeout_seconds` (what the Python SDK sends
//!   for `command_timeout`; `timeout` is accepted too), at most `--exec-timeout`.
//! - One root for both surfaces (upstream's legacy runtime uses `/app`, sandboxd `/workspace`).
//! - A dangling symbolic link on a path is refused (403) rather than guessed about.

pub mod argv;
pub mod confine;
pub mod exec;
pub mod files;
pub mod grpc;
pub mod legacy;
pub mod metadata;
pub mod pty;
pub mod rest;
pub mod server;
pub mod state;
