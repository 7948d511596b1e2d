//! Generates the `process.v1` gRPC client from `proto/` (the one definition both sides compile: the
//! runtime's build reads it from here, so the published crate carries it), with a pure-Rust
//! protobuf compiler (protox), so no `protoc` is needed.

/// Where `process/v1/process.proto` lives, inside this crate.
const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let descriptors = protox::compile(["process/v1/process.proto"], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
