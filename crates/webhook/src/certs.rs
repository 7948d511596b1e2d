//! The webhook's certificates: generating a CA and a serving certificate (ECDSA P-256, with `rcgen`),
//! and checking that a stored set still fits (PEM blocks readable, key matching the certificate,
//! certificate issued by the CA, valid now and for every name the API server may dial).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;

/// Common name of the self-managed CA.
pub const CA_COMMON_NAME: &str = "agent-sandbox-conversion-webhook-ca";

/// Validity of generated certificates.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// How far generated certificates are back-dated, for clocks slightly behind ours.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A certificate problem; the message says which PEM block or check failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A PEM block is missing or unreadable.
    #[error("{what}: {problem}")]
    Pem {
        /// Which block (`ca.crt`, `tls.crt`, `tls.key`).
        what: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The set does not fit together or does not fit this webhook.
    #[error("{0}")]
    Mismatch(String),
    /// Generation failed.
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The CA certificate and the serving certificate and key, all PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// `ca.crt`: the CA the API server trusts (the CRDs' caBundle).
    pub ca: String,
    /// `tls.crt`: the serving certificate.
    pub cert: String,
    /// `tls.key`: the serving key.
    pub key: String,
}

/// The names the serving certificate must be valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS names; the first is the certificate's common name.
    pub dns: Vec<String>,
    /// IP addresses (local mode dials the webhook by IP).
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// The names of Service `service` in `namespace`: `svc`, `svc.ns`, `svc.ns.svc`,
    /// `svc.ns.svc.<cluster_domain>`.
    pub fn for_service(service: &str, namespace: &str, cluster_domain: &str) -> Self {
        Self {
            dns: vec![
                format!("{service}.{namespace}.svc"),
                service.to_owned(),
                format!("{service}.{namespace}"),
                format!("{service}.{namespace}.svc.{cluster_domain}"),
            ],
            ips: Vec::new(),
        }
    }
}

fn pem_error(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> CertError {
    move |error| CertError::Pem {
        what,
        problem: error.to_string(),
    }
}

/// The serving certificate chain and key of `bundle`, ready for rustls (the key must match).
pub fn certified_key(cert: &str, key: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(pem_error("tls.crt"))?;
    if chain.is_empty() {
        return Err(CertError::Pem {
            what: "tls.crt",
            problem: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(pem_error("tls.key"))?;
    CertifiedKey::from_der(chain, key, &default_provider())
        .map(Arc::new)
        .map_err(|error| CertError::Mismatch(format!("tls.key does not fit tls.crt: {error}")))
}

/// Checks that `bundle` is usable for `names` at `now`.
pub fn validate(
    bundle: &CertBundle,
    names: &ServingNames,
    now: SystemTime,
) -> Result<(), CertError> {
    let ca = CertificateDer::from_pem_slice(bundle.ca.as_bytes()).map_err(pem_error("ca.crt"))?;
    let served = certified_key(&bundle.cert, &bundle.key)?;
    let leaf = served
        .end_entity_cert()
        .map_err(|error| CertError::Mismatch(format!("tls.crt has no certificate: {error}")))?;
    let anchor = webpki::anchor_from_trusted_cert(&ca)
        .map_err(|error| CertError::Mismatch(format!("ca.crt is not a usable CA: {error}")))?;
    let leaf = webpki::EndEntityCert::try_from(leaf)
        .map_err(|error| CertError::Mismatch(format!("tls.crt is not readable: {error}")))?;
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::since_unix_epoch(since_epoch),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|error| {
        CertError::Mismatch(format!(
            "tls.crt is not a valid serving certificate issued by ca.crt: {error}"
        ))
    })?;
    let dns = names.dns.iter().map(|name| {
        ServerName::try_from(name.as_str())
            .map(|n| n.to_owned())
            .map_err(|error| CertError::Mismatch(format!("{name:?}: {error}")))
    });
    let ips = names
        .ips
        .iter()
        .map(|ip| Ok(ServerName::IpAddress((*ip).into())));
    for name in dns.chain(ips) {
        let name = name?;
        leaf.verify_is_valid_for_subject_name(&name).map_err(|_| {
            CertError::Mismatch(format!("tls.crt is not valid for {}", name.to_str()))
        })?;
    }
    Ok(())
}

/// Generates a CA and a serving certificate for `names`, valid from an hour before `now` for a year.
pub fn generate(names: &ServingNames, now: SystemTime) -> Result<CertBundle, CertError> {
    let not_before = (now - BACKDATE).into();
    let not_after = (now + VALIDITY).into();

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut serving = CertificateParams::new(Vec::<String>::new())?;
    serving.distinguished_name = DistinguishedName::new();
    if let Some(common_name) = names.dns.first() {
        serving
            .distinguished_name
            .push(DnType::CommonName, common_name.as_str());
    }
    for name in &names.dns {
        serving
            .subject_alt_names
            .push(SanType::DnsName(name.clone().try_into()?));
    }
    for ip in &names.ips {
        serving.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.not_before = not_before;
    serving.not_after = not_after;
    let cert = serving.signed_by(&key, &issuer)?;
    Ok(CertBundle {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        let mut names = ServingNames::for_service("hook", "sys", "cluster.local");
        names.ips.push(IpAddr::from([127, 0, 0, 1]));
        names
    }

    fn bundle() -> CertBundle {
        generate(&names(), SystemTime::now()).expect("generated")
    }

    #[test]
    fn service_names_cover_every_form_the_api_server_may_dial() {
        assert_eq!(
            ServingNames::for_service("hook", "sys", "example.org").dns,
            [
                "hook.sys.svc",
                "hook",
                "hook.sys",
                "hook.sys.svc.example.org"
            ]
        );
    }

    #[test]
    fn a_generated_bundle_validates_for_its_names_and_is_three_pem_blocks() {
        let bundle = bundle();
        assert!(bundle.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        validate(&bundle, &names(), SystemTime::now()).expect("valid");
        // Back-dated an hour, valid for a year.
        validate(
            &bundle,
            &names(),
            SystemTime::now() - Duration::from_secs(1800),
        )
        .expect("valid");
        assert!(validate(&bundle, &names(), SystemTime::now() + VALIDITY * 2).is_err());
    }

    #[test]
    fn a_name_the_certificate_lacks_is_reported() {
        let mut other = names();
        other.dns.push("elsewhere.example".into());
        let error = validate(&bundle(), &other, SystemTime::now()).map(|_| ());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.to_string().contains("elsewhere.example")),
            "{error:?}"
        );
        let mut other = names();
        other.ips = vec![IpAddr::from([10, 0, 0, 1])];
        assert!(validate(&bundle(), &other, SystemTime::now()).is_err());
    }

    #[test]
    fn mixed_up_blocks_are_rejected_naming_the_block() {
        let one = bundle();
        let two = bundle();
        let mismatched_key = CertBundle {
            key: two.key.clone(),
            ..one.clone()
        };
        assert!(validate(&mismatched_key, &names(), SystemTime::now()).is_err());
        let foreign_ca = CertBundle {
            ca: two.ca.clone(),
            ..one.clone()
        };
        let error = validate(&foreign_ca, &names(), SystemTime::now()).map(|_| ());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.to_string().contains("issued by ca.crt")),
            "{error:?}"
        );
        let garbage = CertBundle {
            ca: "not pem".into(),
            ..one.clone()
        };
        let error = validate(&garbage, &names(), SystemTime::now()).map(|_| ());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("ca.crt")),
            "{error:?}"
        );
        let no_key = CertBundle {
            key: String::new(),
            ..one
        };
        let error = validate(&no_key, &names(), SystemTime::now()).map(|_| ());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("tls.key")),
            "{error:?}"
        );
    }
}
