//! The in-sandbox runtime daemon (documentation written at the end of this change).

pub mod argv;
pub mod confine;
pub mod exec;
pub mod files;
pub mod legacy;
pub mod metadata;
pub mod rest;
pub mod server;
pub mod state;
