//! Generates the `process.v1` gRPC code from the proto the client crate publishes
//! (`crates/client/proto`: one definition both sides compile) with a pure-Rust protobuf compiler
//! (protox), so no `protoc` binary is needed.

/// Where `process/v1/process.proto` lives.
const PROTO_ROOT: &str = "../../crates/client/proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let descriptors = protox::compile(["process/v1/process.proto"], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
