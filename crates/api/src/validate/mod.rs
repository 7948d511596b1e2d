//! Semantic checks the OpenAPI schema cannot express, as garde validators with readable messages.
//!
//! The API server enforces the schema; these checks catch the rest (unique names, label domains,
//! empty references) so controllers can report them as a status condition instead of failing later.

mod context;
mod fields;
mod metadata;
mod names;
mod report;

pub use context::{DEFAULT_ALLOWED_LABEL_DOMAIN, ValidationContext};
pub use fields::{env, pod_template, reference, volume_claim_templates};
pub use metadata::additional_pod_metadata;
pub use names::{is_dns_label, is_dns_subdomain};
pub use report::{Invalid, Problem, check};

#[cfg(test)]
mod tests;
