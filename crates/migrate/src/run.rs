//! The migration against a cluster: plan every CRD, check every object, then (with `--apply`) rewrite
//! them at v1beta1, verify, prune `status.storedVersions` and make the CRDs serve v1beta1 alone.

use std::collections::BTreeSet;

use agent_sandbox_api::keys::STORAGE_VERSION;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams, TypeMeta};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::check::{self, Problem};
use crate::kinds::{KINDS, Kind};
use crate::plan::{self, CrdPlan, CrdState, PlanError};
use crate::summary::Summary;

/// Attempts at rewriting one object that others keep changing (each conflict reads it again).
const ATTEMPTS: usize = 5;

/// How a run behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Change the cluster; without it the run only reports what it would do (and checks every object
    /// with a server-side dry-run write).
    pub apply: bool,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every CRD already stores and serves only v1beta1, with no conversion webhook.
    NothingToDo,
    /// Dry run: these objects would be rewritten, and every one passed the checks.
    DryRun(Summary),
    /// These objects were rewritten and verified, the CRDs pruned and switched.
    Migrated(Summary),
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// One of the four CRDs is not installed.
    #[error("CRD {0} is not installed: nothing to migrate from")]
    CrdMissing(String),
    /// A CRD cannot be migrated in its current shape.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A call to the API server failed.
    #[error("{what}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// The API server's (or the client's) message.
        message: String,
    },
    /// Some objects cannot be stored at v1beta1; each was reported on its own line.
    #[error(
        "refusing to migrate: {0} object(s) cannot be stored at v1beta1 (listed above); nothing was changed"
    )]
    Refused(usize),
    /// An object listed at the start was neither rewritten nor deleted.
    #[error("{0} was not rewritten at v1beta1; status.storedVersions left as it is, run again")]
    NotRewritten(String),
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> MigrateError {
    let what = what.into();
    move |error| MigrateError::Api {
        what,
        message: match &error {
            kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
            other => other.to_string(),
        },
    }
}

/// One object to rewrite.
struct Target {
    kind: Kind,
    object: DynamicObject,
}

impl Target {
    fn describe(&self) -> String {
        check::describe(
            &self.kind,
            &self.object.namespace().unwrap_or_default(),
            &self.object.name_any(),
        )
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        let namespace = self.object.namespace().unwrap_or_default();
        Api::namespaced_with(client.clone(), &namespace, &self.kind.v1beta1())
    }
}

/// Runs the migration, reporting each step through `say` (one line per call).
pub async fn run(
    client: &Client,
    options: Options,
    say: &mut dyn FnMut(&str),
) -> Result<Outcome, MigrateError> {
    let plans = plan_crds(client).await?;
    if plans.iter().all(|(_, plan)| plan.is_done()) {
        say(
            "nothing to do: the four CRDs store and serve only v1beta1, with no conversion webhook",
        );
        return Ok(Outcome::NothingToDo);
    }
    for (kind, plan) in &plans {
        say(&describe_plan(kind, plan));
    }
    let (targets, problems) = collect(client, &plans).await?;
    let mut summary = Summary::default();
    for target in &targets {
        summary.add(
            target.kind.kind,
            &target.object.namespace().unwrap_or_default(),
        );
    }
    say(&format!(
        "{} object(s) to rewrite at v1beta1{}",
        summary.total(),
        if summary.total() == 0 { "" } else { ":" }
    ));
    say(summary.to_string().trim_end());
    if !problems.is_empty() {
        for problem in &problems {
            say(&problem.to_string());
        }
        return Err(MigrateError::Refused(problems.len()));
    }
    if !options.apply {
        say(
            "dry run: every object passed the checks and nothing was changed; run again with --apply",
        );
        return Ok(Outcome::DryRun(summary));
    }
    let initial: BTreeSet<String> = targets.iter().filter_map(|t| t.object.uid()).collect();
    let mut rewritten = BTreeSet::new();
    for target in targets {
        if let Some(uid) = rewrite(client, target).await? {
            rewritten.insert(uid);
        }
    }
    say(&format!("rewrote {} object(s) at v1beta1", rewritten.len()));
    verify(client, &plans, &initial, &rewritten).await?;
    say("verified: every object is stored at v1beta1");
    finish_crds(client, &plans, say).await?;
    Ok(Outcome::Migrated(summary))
}

async fn plan_crds(client: &Client) -> Result<Vec<(Kind, CrdPlan)>, MigrateError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut plans = Vec::new();
    for kind in KINDS {
        let name = kind.crd_name();
        let crd = crds
            .get_opt(&name)
            .await
            .map_err(api_error(format!("reading CRD {name}")))?
            .ok_or_else(|| MigrateError::CrdMissing(name.clone()))?;
        plans.push((kind, plan::plan(&CrdState::of(&crd))?));
    }
    Ok(plans)
}

fn describe_plan(kind: &Kind, plan: &CrdPlan) -> String {
    let mut steps = Vec::new();
    if plan.rewrite_objects {
        steps.push("rewrite every object at v1beta1");
    }
    if plan.prune_stored_versions {
        steps.push("prune status.storedVersions to [v1beta1]");
    }
    if plan.serve_v1beta1_only {
        steps.push("serve v1beta1 only, without the conversion webhook");
    }
    if steps.is_empty() {
        steps.push("already done");
    }
    format!("CRD {}: {}", kind.crd_name(), steps.join(", then "))
}

/// Lists every object to rewrite (read at v1beta1) and checks each, with a server-side dry-run write.
async fn collect(
    client: &Client,
    plans: &[(Kind, CrdPlan)],
) -> Result<(Vec<Target>, Vec<Problem>), MigrateError> {
    let mut pools = BTreeSet::new();
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for (kind, plan) in plans {
        let listed = list(client, kind).await?;
        if kind.kind == "SandboxWarmPool" {
            pools = listed
                .iter()
                .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
                .collect();
        }
        if !plan.rewrite_objects {
            continue;
        }
        for object in listed {
            let target = Target {
                kind: *kind,
                object,
            };
            let json = serde_json::to_value(&target.object).unwrap_or(Value::Null);
            problems.extend(check::check(kind, &json, &pools));
            problems.extend(dry_run(client, &target).await?);
            targets.push(target);
        }
    }
    Ok((targets, problems))
}

async fn list(client: &Client, kind: &Kind) -> Result<Vec<DynamicObject>, MigrateError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.v1beta1());
    let listed = api
        .list(&ListParams::default())
        .await
        .map_err(api_error(format!(
            "listing {}s at v1beta1 (objects stored at v1alpha1 need the conversion webhook of \
         deploy/migration)",
            kind.kind
        )))?;
    Ok(listed
        .items
        .into_iter()
        .map(|mut object| {
            object.types = Some(TypeMeta {
                api_version: format!("{}/{STORAGE_VERSION}", kind.group),
                kind: kind.kind.to_owned(),
            });
            object
        })
        .collect())
}

/// The API server's verdict on storing the object at v1beta1, without storing it.
async fn dry_run(client: &Client, target: &Target) -> Result<Option<Problem>, MigrateError> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match target
        .api(client)
        .replace(&target.object.name_any(), &params, &target.object)
        .await
    {
        Ok(_) => Ok(None),
        // Changed or deleted since the list: the rewrite reads it again.
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(None),
        Err(kube::Error::Api(status)) if status.code == 400 || status.code == 422 => {
            Ok(Some(Problem {
                object: target.describe(),
                field: String::new(),
                message: format!("the API server refuses it at v1beta1: {}", status.message),
            }))
        }
        Err(error) => Err(api_error(format!("checking {}", target.describe()))(error)),
    }
}

/// Writes the object back unchanged, which stores it at v1beta1; returns its UID, or `None` if it was
/// deleted meanwhile. A conflict reads it again.
async fn rewrite(client: &Client, target: Target) -> Result<Option<String>, MigrateError> {
    let api = target.api(client);
    let name = target.object.name_any();
    let what = target.describe();
    let mut object = target.object;
    for _ in 0..ATTEMPTS {
        match api.replace(&name, &PostParams::default(), &object).await {
            Ok(written) => return Ok(written.uid()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let fresh = api
                    .get_opt(&name)
                    .await
                    .map_err(api_error(format!("reading {what} again")))?;
                match fresh {
                    Some(mut fresh) => {
                        fresh.types = object.types.take();
                        object = fresh;
                    }
                    None => return Ok(None),
                }
            }
            Err(error) => return Err(api_error(format!("rewriting {what}"))(error)),
        }
    }
    Err(MigrateError::Api {
        what: format!("rewriting {what}"),
        message: format!("still conflicting after {ATTEMPTS} attempts"),
    })
}

/// Every object listed at the start is rewritten or gone; anything newer was written at v1beta1 (the
/// storage version) by whoever created or changed it.
async fn verify(
    client: &Client,
    plans: &[(Kind, CrdPlan)],
    initial: &BTreeSet<String>,
    rewritten: &BTreeSet<String>,
) -> Result<(), MigrateError> {
    for (kind, _) in plans.iter().filter(|(_, plan)| plan.rewrite_objects) {
        for object in list(client, kind).await? {
            let uid = object.uid().unwrap_or_default();
            if initial.contains(&uid) && !rewritten.contains(&uid) {
                let target = Target {
                    kind: *kind,
                    object,
                };
                return Err(MigrateError::NotRewritten(target.describe()));
            }
        }
    }
    Ok(())
}

/// Prunes `status.storedVersions`, then makes each CRD serve v1beta1 alone (the API server refuses to
/// drop a version still listed as stored, hence the order).
async fn finish_crds(
    client: &Client,
    plans: &[(Kind, CrdPlan)],
    say: &mut dyn FnMut(&str),
) -> Result<(), MigrateError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, plan) in plans {
        let name = kind.crd_name();
        if plan.prune_stored_versions {
            let patch = json!({ "status": { "storedVersions": [STORAGE_VERSION] } });
            crds.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_error(format!(
                    "pruning status.storedVersions of CRD {name}"
                )))?;
            say(&format!("CRD {name}: status.storedVersions is [v1beta1]"));
        }
    }
    let defaults = agent_sandbox_api::crd::all();
    for (kind, plan) in plans {
        let name = kind.crd_name();
        if !plan.serve_v1beta1_only {
            continue;
        }
        let versions = defaults
            .iter()
            .find(|crd| crd.metadata.name.as_deref() == Some(name.as_str()))
            .map(|crd| crd.spec.versions.clone())
            .unwrap_or_default();
        let patch = json!({
            "spec": {
                "versions": versions,
                "conversion": { "strategy": "None", "webhook": null },
            }
        });
        crds.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("switching CRD {name} to v1beta1 only")))?;
        say(&format!(
            "CRD {name}: serves v1beta1 only, without the conversion webhook"
        ));
    }
    Ok(())
}
