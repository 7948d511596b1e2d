//! The conversion webhook of the Agent Sandbox CRDs: `v1alpha1` ⇄ `v1beta1` for all four kinds, served
//! over TLS at `/convert`, with self-managed or provided certificates.
//!
//! * [`review`]: the pure ConversionReview request → response function;
//! * [`certs`]: certificate generation and validation;
//! * [`provision`]: the self-managed Secret and the CRDs' conversion config;
//! * [`tls`]: the TLS server with certificate reload;
//! * [`start()`]: all of the above, from [`WebhookSettings`].
//!
//! It is a crate of its own because only installs that still serve `v1alpha1` need it: the controller
//! binary starts it next to the controllers, and nothing in the controllers depends on it.
//!
//! ```
//! // The pure conversion: a ConversionReview in, its response out (no server needed).
//! let review = br#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
//!     "request": {"uid": "1", "desiredAPIVersion": "agents.x-k8s.io/v1beta1", "objects": []}}"#;
//! let response = agent_sandbox_webhook::review::respond(review).expect("a ConversionReview");
//! assert_eq!(response["response"]["result"]["status"], "Success");
//! ```

pub mod certs;
mod error;
pub mod provision;
pub mod review;
mod settings;
mod start;
pub mod tls;

pub use agent_sandbox_api::keys::webhook::CONVERT_PATH;
pub use error::WebhookError;
pub use settings::{MANAGED_CERT_NAME, MANAGED_KEY_NAME, WebhookSettings, url_host};
pub use start::start;
