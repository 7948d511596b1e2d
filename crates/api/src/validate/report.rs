//! How problems are reported: garde's report turned into problems located by JSON path.

use super::context::ValidationContext;

/// One problem found by [`check`], located by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending field, e.g. `spec.volumeClaimTemplates`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems [`check`] found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<Problem>);

/// Runs the semantic checks on a spec; problems name fields by their JSON path under `spec`.
pub fn check<T>(spec: &T, ctx: &ValidationContext) -> Result<(), Invalid>
where
    T: garde::Validate<Context = ValidationContext> + ?Sized,
{
    let report = match spec.validate_with(ctx) {
        Ok(()) => return Ok(()),
        Err(report) => report,
    };
    let problems = report
        .iter()
        .map(|(path, error)| Problem {
            path: json_path(&path.to_string()),
            message: error.message().to_owned(),
        })
        .collect();
    Err(Invalid(problems))
}

/// `blueprint.pod_template` → `spec.podTemplate`: Rust field names to JSON names, flattened structs removed.
fn json_path(rust_path: &str) -> String {
    let mut path = String::from("spec");
    for component in rust_path
        .split('.')
        .filter(|c| !c.is_empty() && *c != "blueprint")
    {
        path.push('.');
        let mut upper = false;
        for c in component.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                path.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                path.push(c);
            }
        }
    }
    path
}

pub(super) fn fail(problems: Vec<String>) -> garde::Result {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(problems.join("; ")))
    }
}
