//! Optional authentication (`--auth=tokenreview`, off by default): every proxied request must
//! carry `Authorization: Bearer <token>` that the API server's TokenReview accepts. This
//! authenticates the caller; it does not decide which Sandboxes the caller may reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use hyper::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use crate::metrics::{DecisionLabels, Metrics};

/// How long a verdict is reused: a revoked token keeps working at most this long.
const TTL: Duration = Duration::from_secs(30);
/// Most verdicts kept; memory stays bounded whatever tokens clients send.
const CAPACITY: usize = 4096;

/// Why a request is not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    /// The API server did not authenticate the token.
    #[error("the bearer token was not accepted")]
    Denied,
    /// The TokenReview could not be made.
    #[error("cannot verify the bearer token: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The status code the request is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Denied => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The token of `Authorization: Bearer <token>`, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Recent verdicts keyed by the token's SHA-256 (tokens themselves are never kept).
#[derive(Debug, Default)]
struct Verdicts(HashMap<[u8; 32], (Instant, bool)>);

impl Verdicts {
    fn get(&self, key: &[u8; 32], now: Instant) -> Option<bool> {
        self.0
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, allowed)| *allowed)
    }

    fn put(&mut self, key: [u8; 32], allowed: bool, now: Instant) {
        if self.0.len() >= CAPACITY {
            self.0.retain(|_, (at, _)| now.duration_since(*at) < TTL);
            if self.0.len() >= CAPACITY {
                // Every entry is fresh: a flood of distinct tokens. Start over rather than grow.
                self.0.clear();
            }
        }
        self.0.insert(key, (now, allowed));
    }
}

/// Authenticates requests with TokenReview.
pub struct TokenReviewer {
    client: kube::Client,
    audiences: Vec<String>,
    verdicts: Mutex<Verdicts>,
    metrics: Arc<Metrics>,
}

impl TokenReviewer {
    /// Reviews tokens through `client`; `audiences` (may be empty) are the audiences a token must
    /// be valid for.
    pub fn new(client: kube::Client, audiences: Vec<String>, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            audiences,
            verdicts: Mutex::default(),
            metrics,
        }
    }

    /// `Ok` when the request's bearer token is authenticated.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let result = self.decide(headers).await;
        let decision = match &result {
            Ok(()) => "allowed",
            Err(AuthError::Unavailable(_)) => "error",
            Err(_) => "denied",
        };
        self.metrics
            .auth_decisions
            .get_or_create(&DecisionLabels { decision })
            .inc();
        result
    }

    async fn decide(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let token = bearer(headers).ok_or(AuthError::Missing)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.lock().get(&key, Instant::now());
        let allowed = match cached {
            Some(allowed) => allowed,
            None => {
                let allowed = self.review(token).await?;
                self.lock().put(key, allowed, Instant::now());
                allowed
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Denied)
        }
    }

    async fn review(&self, token: &str) -> Result<bool, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(answer.status.and_then(|s| s.authenticated).unwrap_or(false))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer(&with_auth("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer(&with_auth("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(&with_auth("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer(&with_auth("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn verdicts_expire_and_stay_bounded() {
        let start = Instant::now();
        let mut verdicts = Verdicts::default();
        verdicts.put([1; 32], true, start);
        assert_eq!(verdicts.get(&[1; 32], start + TTL / 2), Some(true));
        assert_eq!(verdicts.get(&[1; 32], start + TTL), None);
        for i in 0..CAPACITY * 2 {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            verdicts.put(key, false, start);
        }
        assert!(verdicts.0.len() <= CAPACITY);
    }
}
