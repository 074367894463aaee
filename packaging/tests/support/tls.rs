//! TLS for the test index: the server side of rustls with a certificate for 127.0.0.1 signed
//! by a test authority (`tests/fixtures/tls/`) whose private key was thrown away when it was
//! made, so nothing else can ever be signed by it.

use std::sync::Arc;

/// The PEM of the test authority, for clients that should trust the test index.
pub const CA_PEM: &str = include_str!("../fixtures/tls/ca.pem");
const SERVER_PEM: &str = include_str!("../fixtures/tls/server.pem");
const SERVER_KEY: &str = include_str!("../fixtures/tls/server.key");

/// The server configuration of the test index.
pub fn server_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(SERVER_PEM.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("the test certificate is PEM");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("the test key is PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the test certificate matches its key");
    Arc::new(config)
}
