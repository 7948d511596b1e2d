//! Parsing and checking single flag values: bind addresses, Go durations, DNS names, URLs and numbers.
//! The checks are garde custom validators, named by the `#[garde(custom(…))]` attributes on
//! [`crate::flags::Flags`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use agent_sandbox_api::validate::{is_dns_label, is_dns_subdomain};
use k8s_openapi::jiff::SignedDuration;

/// Parses `:PORT`, `HOST:PORT` or `[V6]:PORT`.
pub fn parse_bind_address(value: &str) -> Option<SocketAddr> {
    if let Some(port) = value.strip_prefix(':') {
        return port
            .parse()
            .ok()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse().ok()
}

pub fn bind_address(value: &str, _: &()) -> garde::Result {
    match parse_bind_address(value) {
        Some(_) => Ok(()),
        None => Err(garde::Error::new(format!(
            "{value:?} is not an address: use :PORT, IP:PORT or [IPv6]:PORT"
        ))),
    }
}

pub fn dns_subdomain(value: &str, _: &()) -> garde::Result {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "{value:?} is not a DNS subdomain (lower-case alphanumerics, '-' and '.')"
        )))
    }
}

pub fn dns_label(value: &str, _: &()) -> garde::Result {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!("{value:?} is not a DNS label")))
    }
}

pub fn https_url(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(url) if agent_sandbox_webhook::url_host(url).is_none() => Err(garde::Error::new(
            format!("{url:?} is not an https:// URL with a host"),
        )),
        _ => Ok(()),
    }
}

pub fn optional_dns_label(value: &str, _: &()) -> garde::Result {
    if value.is_empty() || is_dns_label(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "{value:?} is not a namespace name"
        )))
    }
}

pub fn finite_non_negative(value: &f64, _: &()) -> garde::Result {
    if value.is_finite() && *value >= 0.0 {
        Ok(())
    } else {
        Err(garde::Error::new("must be a finite number, 0 or more"))
    }
}

pub fn positive(value: &Duration, _: &()) -> garde::Result {
    if value.is_zero() {
        Err(garde::Error::new("must be longer than 0"))
    } else {
        Ok(())
    }
}

/// Parses a Go duration (`0`, `300ms`, `5m`, `1h30m`, `1.5s`); negative values are refused.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let parsed: SignedDuration = value
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (examples: 0, 500ms, 2s, 5m, 1h30m)"))?;
    Duration::try_from(parsed).map_err(|_| format!("{value:?} is negative"))
}

pub fn finite(value: &f32, _: &()) -> garde::Result {
    if value.is_finite() {
        Ok(())
    } else {
        Err(garde::Error::new("must be a finite number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_accept_upstream_forms() {
        assert_eq!(
            parse_bind_address(":9090"),
            Some(SocketAddr::from(([0, 0, 0, 0], 9090)))
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:0"),
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert_eq!(parse_bind_address("localhost"), None);
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
