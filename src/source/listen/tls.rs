//! TLS of listeners, with rustls: a certificate chain and its key (PEM; PKCS#8, RSA or SEC1
//! keys), and client certificates checked against `client_ca` when asked for.

use super::settings::{ClientAuth, ListenError, ListenTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ListenError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ListenError::Tls(format!("{}: no PEM certificate ({e})", path.display())))?;
    if certs.is_empty() {
        return Err(ListenError::Tls(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The acceptor of a listener's TLS settings.
pub fn acceptor(tls: &ListenTls) -> Result<tokio_rustls::TlsAcceptor, ListenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        ListenError::Tls(format!("{}: no PEM private key ({e})", tls.key.display()))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?;
    let builder = match (&tls.client_ca, tls.client_auth) {
        (Some(ca), auth) if auth != ClientAuth::None => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| ListenError::Tls(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| ListenError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        ListenError::Tls(format!(
            "{} and {}: {e}",
            tls.cert.display(),
            tls.key.display()
        ))
    })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
