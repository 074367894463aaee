//! Which root certificates the index client trusts.

use super::super::Roots;
use anyhow::{Context, bail};
use std::path::PathBuf;
use ureq::tls::{Certificate, PemItem, RootCerts};

/// The trusted root certificates: `SSL_CERT_FILE`, else the files of `SSL_CERT_DIR`
/// (`:`-separated), else the system's store when `native_tls`, else Mozilla's roots built
/// into the binary.
pub(super) fn root_certs(native_tls: bool) -> anyhow::Result<(RootCerts, Roots)> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(file);
        let pem = std::fs::read(&path)
            .with_context(|| format!("reading SSL_CERT_FILE {}", path.display()))?;
        let certs = pem_certificates(&pem);
        if certs.is_empty() {
            bail!("SSL_CERT_FILE {} holds no PEM certificate", path.display());
        }
        return Ok((RootCerts::new_with_certs(&certs), Roots::Environment));
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty()) {
        let mut certs = Vec::new();
        for dir in std::env::split_paths(&dirs) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(pem) = std::fs::read(entry.path()) {
                    certs.extend(pem_certificates(&pem));
                }
            }
        }
        if !certs.is_empty() {
            return Ok((RootCerts::new_with_certs(&certs), Roots::Environment));
        }
    }
    if native_tls {
        return Ok((RootCerts::PlatformVerifier, Roots::System));
    }
    Ok((RootCerts::WebPki, Roots::Mozilla))
}

fn pem_certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect()
}
