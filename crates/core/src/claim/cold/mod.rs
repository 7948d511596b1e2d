//! The Sandbox a claim creates when no warm one can be adopted (a cold start).

use std::collections::BTreeMap;

use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
use agent_sandbox_api::conditions::claim as reason;
use agent_sandbox_api::extensions::{EnvVar, EnvVarsInjectionPolicy};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{
    Sandbox, SandboxClaim, SandboxSpec, SandboxTemplate, VolumeClaimTemplatesPolicy,
};
use agent_sandbox_api::validate;
use k8s_openapi::api::core::v1::{Container, EnvVar as CoreEnvVar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::metadata::{claim_reference, created_by, merge_no_override, trace_context};
use crate::claim::status::ClaimError;
use crate::template::apply_secure_defaults;

/// Why a cold Sandbox could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColdError {
    /// `spec.env` is not allowed by the template (reported, not retried).
    EnvRejected(String),
    /// The volume claim templates are disallowed or invalid (reported, not retried).
    VolumeClaimTemplates(String),
    /// Anything else (reported as ReconcilerError and retried with backoff, as upstream).
    Other(String),
}

/// The pass reports a cold build's error as the claim error of the same name.
impl From<ColdError> for ClaimError {
    fn from(error: ColdError) -> Self {
        match error {
            ColdError::EnvRejected(m) => ClaimError::EnvRejected(m),
            ColdError::VolumeClaimTemplates(m) => ClaimError::VolumeClaimTemplates(m),
            ColdError::Other(m) => ClaimError::Other(m),
        }
    }
}

impl ColdError {
    /// The claim's Ready reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ColdError::EnvRejected(_) => reason::ENV_VARS_INJECTION_REJECTED,
            ColdError::VolumeClaimTemplates(_) => reason::VOLUME_CLAIM_TEMPLATES_ERROR,
            ColdError::Other(_) => reason::RECONCILER_ERROR,
        }
    }

    /// Whether the controller should retry with backoff (only a spec change fixes the others).
    pub fn retried(&self) -> bool {
        matches!(self, ColdError::Other(_))
    }

    /// The error text.
    pub fn message(&self) -> &str {
        match self {
            ColdError::EnvRejected(m)
            | ColdError::VolumeClaimTemplates(m)
            | ColdError::Other(m) => m,
        }
    }
}

fn vct_problems(list: &[PersistentVolumeClaimTemplate]) -> Option<String> {
    validate::volume_claim_templates(list, &())
        .err()
        .map(|e| e.message().to_owned())
}

/// The claim's volume claim templates merged into the template's under the template's policy.
pub fn merge_volume_claim_templates(
    template: &SandboxTemplate,
    claim: &[PersistentVolumeClaimTemplate],
) -> Result<Vec<PersistentVolumeClaimTemplate>, ColdError> {
    let base = &template.spec.blueprint.volume_claim_templates;
    let wrap = |m: String| {
        ColdError::VolumeClaimTemplates(format!("failed to merge volume claim templates: {m}"))
    };
    if let Some(p) = vct_problems(base) {
        return Err(wrap(format!(
            "template: invalid volume claim templates: {p}"
        )));
    }
    if let Some(p) = vct_problems(claim) {
        return Err(wrap(format!("claim: invalid volume claim templates: {p}")));
    }
    match template
        .spec
        .volume_claim_templates_policy
        .unwrap_or_default()
    {
        VolumeClaimTemplatesPolicy::Disallowed => Err(wrap(
            "volume claim templates are disallowed by the template".into(),
        )),
        VolumeClaimTemplatesPolicy::Allowed => {
            if let Some(clash) = claim
                .iter()
                .find(|c| base.iter().any(|b| b.metadata.name == c.metadata.name))
            {
                return Err(wrap(format!(
                    "cannot override template volume {:?}",
                    clash.metadata.name
                )));
            }
            Ok(base.iter().chain(claim).cloned().collect())
        }
        VolumeClaimTemplatesPolicy::Overrides => {
            let mut merged: Vec<_> = base
                .iter()
                .map(|b| {
                    claim
                        .iter()
                        .find(|c| c.metadata.name == b.metadata.name)
                        .unwrap_or(b)
                        .clone()
                })
                .collect();
            merged.extend(
                claim
                    .iter()
                    .filter(|c| !base.iter().any(|b| b.metadata.name == c.metadata.name))
                    .cloned(),
            );
            Ok(merged)
        }
    }
}

/// Injects the claim's literal environment variables into the pod spec's containers under `policy`.
pub fn inject_env(
    init: &mut [Container],
    main: &mut [Container],
    env: &[EnvVar],
    policy: EnvVarsInjectionPolicy,
) -> Result<(), ColdError> {
    if env.is_empty() {
        return Ok(());
    }
    if !matches!(
        policy,
        EnvVarsInjectionPolicy::Allowed | EnvVarsInjectionPolicy::Overrides
    ) {
        return Err(ColdError::EnvRejected(
            "environment variable injection rejected: environment variable injection is not allowed by the template policy".into(),
        ));
    }
    if let Some(var) = env.iter().find(|v| {
        !v.container_name.is_empty()
            && !init
                .iter()
                .chain(main.iter())
                .any(|c| c.name == v.container_name)
    }) {
        return Err(ColdError::Other(format!(
            "target container {:?} not found in template for environment variable {:?}",
            var.container_name, var.name
        )));
    }
    let first_main = main.first().map(|c| c.name.clone());
    for container in init.iter_mut().chain(main.iter_mut()) {
        let mut entries: Vec<&EnvVar> = env
            .iter()
            .filter(|v| v.container_name == container.name)
            .collect();
        if Some(&container.name) == first_main.as_ref() {
            entries.extend(env.iter().filter(|v| v.container_name.is_empty()));
        }
        if !entries.is_empty() {
            inject_into(container, &entries, policy)?;
        }
    }
    Ok(())
}

/// Sets `entries` as literal variables of `container`: a clash with an EnvFrom source or an
/// existing variable is an error unless the policy allows overrides.
fn inject_into(
    container: &mut Container,
    entries: &[&EnvVar],
    policy: EnvVarsInjectionPolicy,
) -> Result<(), ColdError> {
    if policy == EnvVarsInjectionPolicy::Allowed
        && container.env_from.as_ref().is_some_and(|f| !f.is_empty())
    {
        return Err(ColdError::EnvRejected(format!(
            "environment variable injection rejected: container {:?} uses EnvFrom sources; Allowed policy cannot safely prevent overriding EnvFrom-provided variables",
            container.name
        )));
    }
    let list = container.env.get_or_insert_with(Vec::new);
    for entry in entries {
        let literal = CoreEnvVar {
            name: entry.name.clone(),
            value: Some(entry.value.clone()),
            value_from: None,
        };
        match list.iter_mut().find(|e| e.name == entry.name) {
            Some(existing) if policy == EnvVarsInjectionPolicy::Overrides => *existing = literal,
            Some(_) => {
                return Err(ColdError::Other(format!(
                    "environment variable override is not allowed by the template policy for variable {:?}",
                    entry.name
                )));
            }
            None => list.push(literal),
        }
    }
    Ok(())
}

/// The volume claim templates of the cold Sandbox: the template's (if valid), merged with the claim's
/// when it has any.
fn volume_claim_templates(
    claim: &SandboxClaim,
    template: &SandboxTemplate,
) -> Result<Vec<PersistentVolumeClaimTemplate>, ColdError> {
    let own = &template.spec.blueprint.volume_claim_templates;
    if !claim.spec.volume_claim_templates.is_empty() {
        return merge_volume_claim_templates(template, &claim.spec.volume_claim_templates);
    }
    match vct_problems(own) {
        Some(p) => Err(ColdError::VolumeClaimTemplates(format!(
            "invalid volume claim templates in template: {p}"
        ))),
        None => Ok(own.clone()),
    }
}

/// The Sandbox a cold start creates for `claim` from `template` (named like the claim, owned by it).
pub fn build(claim: &SandboxClaim, template: &SandboxTemplate) -> Result<Sandbox, ColdError> {
    let template_name = template.metadata.name.clone().unwrap_or_default();
    let uid = claim.metadata.uid.clone().unwrap_or_default();

    let mut blueprint = template.spec.blueprint.clone();
    blueprint.volume_claim_templates = volume_claim_templates(claim, template)?;

    let mut identity = BTreeMap::from([
        (labels::CLAIM_UID.to_owned(), uid),
        (
            labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
            name_hash(&template_name),
        ),
    ]);
    if let Some(creator) = created_by(claim) {
        identity.insert(labels::CREATED_BY.to_owned(), creator);
    }
    let pod_metadata = &mut blueprint.pod_template.metadata;
    pod_metadata.labels.extend(identity.clone());
    merge_no_override(pod_metadata, &claim.spec.additional_pod_metadata)
        .map_err(ColdError::Other)?;

    let spec = &mut blueprint.pod_template.spec;
    let mut init = spec.init_containers.take().unwrap_or_default();
    let policy = template.spec.env_vars_injection_policy.unwrap_or_default();
    inject_env(&mut init, &mut spec.containers, &claim.spec.env, policy)?;
    spec.init_containers = (!init.is_empty()).then_some(init);
    apply_secure_defaults(spec, template);

    let mut sandbox_labels = identity;
    sandbox_labels.insert(
        labels::LAUNCH_TYPE.to_owned(),
        labels::LAUNCH_TYPE_COLD.to_owned(),
    );
    let mut sandbox_annotations =
        BTreeMap::from([(annotations::SANDBOX_TEMPLATE_REF.to_owned(), template_name)]);
    if let Some(trace) = trace_context(claim) {
        sandbox_annotations.insert(annotations::TRACE_CONTEXT.to_owned(), trace.clone());
    }
    Ok(Sandbox {
        metadata: ObjectMeta {
            name: claim.metadata.name.clone(),
            namespace: claim.metadata.namespace.clone(),
            labels: Some(sandbox_labels),
            annotations: Some(sandbox_annotations),
            owner_references: Some(vec![claim_reference(claim)]),
            ..ObjectMeta::default()
        },
        spec: SandboxSpec {
            blueprint,
            ..SandboxSpec::default()
        },
        status: None,
    })
}

#[cfg(test)]
mod tests;
