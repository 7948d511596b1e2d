//! Generates the `process.v1` gRPC client from the runtime's proto (the one definition both sides
//! compile), with a pure-Rust protobuf compiler (protox), so no `protoc` is needed.

/// Where the runtime keeps `process/v1/process.proto`.
const PROTO_ROOT: &str = "../../bins/agent-sandbox-runtime/proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let descriptors = protox::compile(["process/v1/process.proto"], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
