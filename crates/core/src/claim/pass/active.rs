//! A live claim: validate its metadata, find (or adopt) its Sandbox and keep that Sandbox's pod
//! metadata in sync, or create one cold.

use agent_sandbox_api::conditions::events;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate};
use agent_sandbox_api::validate;

use super::find::{Found, find};
use super::outcome::{CREATE_PENDING_RETRY, NOT_FOUND_RETRY, Served, Settings, Settled};
use super::state::Pass;
use super::sync::sync_metadata;
use crate::claim::api::{ApiError, ClaimApi};
use crate::claim::cold;
use crate::claim::status::ClaimError;

fn bound(sandbox: Option<Sandbox>, error: Option<ClaimError>) -> Settled {
    Settled::Bound {
        sandbox: sandbox.map(Box::new),
        error,
    }
}

/// Settles a live claim. A wait for warm candidates ends the pass without a status write.
pub(super) async fn settle<A: ClaimApi>(pass: &mut Pass<'_, A>, settings: &Settings) -> Settled {
    if let Err(error) = validate::additional_pod_metadata(
        &pass.claim.spec.additional_pod_metadata,
        &settings.validation,
    ) {
        let message = format!("invalid additionalPodMetadata: {}", error.message());
        return bound(None, Some(ClaimError::InvalidMetadata(message)));
    }
    match find(pass).await {
        Err(error) => bound(None, Some(error)),
        Ok(Found::Pending(wait)) => wait_for(pass, wait).await,
        Ok(Found::Sandbox(sandbox)) => {
            let (sandbox, error) = sync_metadata(pass, *sandbox).await;
            bound(Some(sandbox), error)
        }
        Ok(Found::Nothing) => match pass.template() {
            Err(error) => bound(None, Some(error)),
            Ok(template) => cold_start(pass, &template).await,
        },
    }
}

/// Nothing decided yet: no status write, just look again after `wait`.
async fn wait_for<A: ClaimApi>(pass: &mut Pass<'_, A>, wait: std::time::Duration) -> Settled {
    Settled::Stop {
        requeue_after: Some(wait),
        error: pass.flush_first_observed().await.err(),
    }
}

/// Creates the claim's Sandbox from the template, unless the claim on the API server moved on.
async fn cold_start<A: ClaimApi>(pass: &mut Pass<'_, A>, template: &SandboxTemplate) -> Settled {
    // A create cannot be locked on the claim, so make sure this pass is not deciding on a stale
    // claim that already adopted or created a Sandbox.
    match pass.api.read_claim().await {
        Ok(fresh) if fresh.metadata.resource_version != pass.claim.metadata.resource_version => {
            return wait_for(pass, CREATE_PENDING_RETRY).await;
        }
        Ok(_) => {}
        Err(ApiError::NotFound) => return wait_for(pass, NOT_FOUND_RETRY).await,
        Err(error) => {
            let error = format!("failed to re-read the claim before a cold create: {error}");
            return bound(None, Some(ClaimError::Other(error)));
        }
    }
    match create_cold(pass, template).await {
        Ok(sandbox) => bound(Some(sandbox), None),
        Err(error) => bound(None, Some(error)),
    }
}

async fn create_cold<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    template: &SandboxTemplate,
) -> Result<Sandbox, ClaimError> {
    let sandbox = cold::build(&pass.claim, template)?;
    match pass.api.create_sandbox(sandbox).await {
        Ok(created) => {
            let name = created.metadata.name.clone().unwrap_or_default();
            pass.event(
                events::SANDBOX_PROVISIONED,
                "Provisioning",
                format!("Created Sandbox {name:?}"),
            );
            let served = Served {
                launch_type: labels::LAUNCH_TYPE_COLD,
                warmpool_name: pass.claim.spec.warm_pool_ref.name.clone(),
                sandbox_template: template.metadata.name.clone().unwrap_or_default(),
                ready: false,
                created_by: pass.created_by(),
            };
            pass.served.push(served);
            Ok(created)
        }
        Err(ApiError::AlreadyExists) => Err(ClaimError::CreatePending),
        Err(error) => Err(ClaimError::Other(format!("sandbox create error: {error}"))),
    }
}
