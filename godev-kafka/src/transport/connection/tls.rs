//! TLS for broker connections, with rustls: the roots a broker's certificate must chain to,
//! an optional client certificate (mutual TLS), and whether the certificate must name the
//! host connected to.
//!
//! A [`Tls`] is built once from [`TlsOptions`] (files read and checked then, so a bad file
//! is an error at start-up, not at the first connection) and shared by every connection of
//! a cluster.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::security::TlsOptions;
use crate::{Error, Result};

/// TLS settings made ready for connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An error about one of the TLS files.
fn file_error(what: &str, path: &Path, message: impl std::fmt::Display) -> Error {
    Error::transport(
        format!("read the TLS {what} {}", path.display()),
        message.to_string(),
        false,
    )
}

impl Tls {
    /// Reads the files `options` names and builds the client configuration.
    ///
    /// # Errors
    ///
    /// A file is missing or holds no certificate or key, a client certificate comes without
    /// its key (or the other way round), or no root certificate is found.
    pub(crate) fn new(options: &TlsOptions) -> Result<Self> {
        let provider = provider();
        let roots = Arc::new(roots(options.ca_file.as_deref())?);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::transport("set up TLS", e.to_string(), false))?;
        let builder = if options.verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::transport("set up TLS", e.to_string(), false))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        };
        let config = match (&options.cert_file, &options.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let chain = certificates("client certificate", cert_file)?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| file_error("client key", key_file, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| file_error("client certificate", cert_file, e))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(path), None) | (None, Some(path)) => {
                return Err(file_error(
                    "client certificate or key",
                    path,
                    "mutual TLS needs both a certificate file and a key file",
                ));
            }
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the TLS handshake on `stream`, connected to `addr` (`host:port`).
    ///
    /// # Errors
    ///
    /// The handshake failed: the broker's certificate is not trusted or does not name the
    /// host, the broker asked for a client certificate and got none, or it speaks no TLS.
    pub(crate) async fn wrap(&self, stream: TcpStream, addr: &str) -> Result<TlsStream<TcpStream>> {
        let op = || format!("TLS handshake with broker {addr}");
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::transport(op(), format!("`{host}`: {e}"), false))?;
        self.connector
            .connect(name, stream)
            .await
            // Not retriable: a certificate does not mend by itself. A broker that closed
            // the connection mid-handshake says so in the message.
            .map_err(|e| Error::transport(op(), e, false))
    }
}

/// The roots: the PEM file's certificates, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates("CA file", path)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("CA file", path, e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::transport(
                    "load the system's root certificates",
                    "none found; set a CA file",
                    false,
                ));
            }
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file; at least one.
fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// A verifier that checks the chain and the signatures but not the host name
/// (`verify_hostname = false`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
