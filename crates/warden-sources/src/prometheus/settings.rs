//! What a tenant may configure as its Prometheus source, checked when an admin sets it
//! and again when a client is built: the URL Warden will send credentials to, and the CA
//! it will trust for that URL. Pure functions over the settings.

use std::net::IpAddr;

use reqwest::Url;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use warden_proto::common::v1::PrometheusSource;

const MAX_URL_BYTES: usize = 2048;
const MAX_CA_PEM_BYTES: usize = 64 * 1024;
const MAX_CREDENTIALS_ID_BYTES: usize = 128;

/// Checks a tenant's Prometheus settings; the error names the field and what to do.
/// An empty URL (with nothing else set) means "the embedded store" and is fine.
pub fn check_source(source: &PrometheusSource) -> Result<(), String> {
    if source.url.is_empty() {
        if !source.ca_pem.is_empty() || !source.credentials_id.is_empty() {
            return Err(
                "prometheus.url is empty (the embedded store) but ca_pem or credentials_id is set; set the url or clear them".into(),
            );
        }
        return Ok(());
    }
    parse_url(&source.url)?;
    parse_ca(&source.ca_pem)?;
    let id = &source.credentials_id;
    if id.len() > MAX_CREDENTIALS_ID_BYTES
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(
            "prometheus.credentials_id must be an id returned by Admin.PutSourceCredentials".into(),
        );
    }
    Ok(())
}

/// The base URL requests are made under: https, or http to a loopback address; no
/// userinfo (credentials are stored sealed, not in settings), query or fragment.
pub(crate) fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_BYTES {
        return Err(format!(
            "prometheus.url is {} bytes; the limit is {MAX_URL_BYTES}",
            raw.len()
        ));
    }
    let url = Url::parse(raw).map_err(|e| format!("prometheus.url is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL itself holds the secret.
        return Err(
            "prometheus.url must not contain a user or password; store them with Admin.PutSourceCredentials".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("prometheus.url must not have a query (?...) or fragment (#...)".into());
    }
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!(
            "prometheus.url has scheme {:?}; it must be https://",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("prometheus.url has no host")?;
    // An IPv6 host is written [::1] in URLs.
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if url.scheme() == "http" && !ip.is_some_and(|ip| ip.is_loopback()) {
        return Err(
            "prometheus.url must be https:// (http:// only to a loopback address such as 127.0.0.1)".into(),
        );
    }
    if let Some(ip) = ip
        && (ip.is_unspecified() || is_link_local(ip) || ip.is_multicast())
    {
        return Err(format!(
            "prometheus.url points at {ip}, which is not a server address (unspecified, link-local or multicast)"
        ));
    }
    Ok(url)
}

/// The certificates of `ca_pem`; empty when it is (the built-in roots are trusted then).
pub(crate) fn parse_ca(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    if pem.is_empty() {
        return Ok(Vec::new());
    }
    if pem.len() > MAX_CA_PEM_BYTES {
        return Err(format!(
            "prometheus.ca_pem is {} bytes; the limit is {MAX_CA_PEM_BYTES}",
            pem.len()
        ));
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("prometheus.ca_pem is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("prometheus.ca_pem holds no certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        roots
            .add(c.clone())
            .map_err(|e| format!("prometheus.ca_pem certificate {}: {e}", i + 1))?;
    }
    Ok(certs)
}

/// 169.254.0.0/16 and fe80::/10: where cloud metadata services answer.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}
