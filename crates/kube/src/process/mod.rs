//! The controller process: its settings, the probe and metrics servers, leadership, the controllers,
//! and stopping — each written once.

pub mod config;
pub mod controllers;
pub mod embedded;
pub mod error;
pub mod leader;
pub mod leadership;
pub mod run;
pub mod servers;
pub mod settings;
pub mod signal;
