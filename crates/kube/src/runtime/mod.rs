//! The runtime every controller is built on: typed errors and the one retry policy, the one write
//! helper, the one way to declare a watch (and what its cache keeps), the change feed, Events, and
//! the control loop that ties them together.

pub mod control_loop;
pub mod error;
pub mod events;
pub mod feed;
pub mod retry;
pub mod slim;
pub mod watch;
pub mod writes;
