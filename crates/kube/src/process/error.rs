//! Why the process stopped with an error.

use std::net::SocketAddr;

use crate::process::leader::LeadershipLost;

/// Errors of the controller process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An HTTP endpoint could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Leadership was lost; the process must stop.
    #[error(transparent)]
    LeadershipLost(#[from] LeadershipLost),
}
