//! The `agent-sandbox-runtime` binary.

fn main() {}
