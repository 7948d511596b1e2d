//! The in-sandbox runtime daemon (documentation grows with the HTTP surfaces).

pub mod argv;
pub mod confine;
pub mod exec;
pub mod metadata;
