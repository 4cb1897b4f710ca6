//! How a client proves who it is and keeps its traffic private: TLS and SASL settings,
//! shared by config and transports (neither imports the other). The public paths are
//! [`transport::TlsOptions`](crate::transport::TlsOptions) and its neighbours.
//!
//! Secrets (passwords, tokens) are held in [`Secret`], whose `Debug` and `Display` print
//! `<redacted>`, so no status, log line or error can show one by accident.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::Result;
use crate::transport::BoxFuture;

/// What a TLS error says when the broker ended the session with an alert after the
/// handshake: under TLS 1.3 that is how a broker refuses a client without a certificate.
#[cfg(any(feature = "kafka", feature = "native", feature = "confluent"))]
pub(crate) fn ended_by_broker(message: &str) -> String {
    format!(
        "the broker ended the TLS session ({message}); if it requires client certificates \
         (mutual TLS), give a certificate and key file"
    )
}

/// A password or a token. Its `Debug` and `Display` print `<redacted>`; only
/// [`Secret::expose`] gives the text.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::Secret;
///
/// let password = Secret::new("alice-secret");
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "alice-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS for broker connections (the `native` backend): which certificates to trust, an
/// optional client certificate for mutual TLS, and whether the broker's certificate must
/// name the host connected to.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::TlsOptions;
///
/// let mut tls = TlsOptions::default(); // the system's roots, the host name checked
/// tls.ca_file = Some("/etc/kafka/ca.pem".into());
/// assert!(tls.verify_hostname);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// A PEM file of the CA certificates to trust; `None`: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the client's certificate chain, for mutual TLS (with
    /// [`key_file`](Self::key_file)).
    pub cert_file: Option<PathBuf>,
    /// A PEM file of the client's private key (PKCS#8, PKCS#1 or SEC1), for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Whether the broker's certificate must name the host connected to (default true).
    pub verify_hostname: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify_hostname: true,
        }
    }
}

/// A SASL mechanism Kafka brokers offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// User name and password in the clear (use it over TLS only).
    Plain,
    /// Salted challenge-response with SHA-256 (RFC 7677).
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
    /// An OAuth 2 bearer token (RFC 7628), from a [`TokenProvider`].
    OAuthBearer,
}

impl SaslMechanism {
    /// Every mechanism.
    pub(crate) const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ];

    /// The mechanism config names `name` ([`SaslMechanism::as_str`]).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The name config uses: `plain`, `scram-sha-256`, `scram-sha-512`, `oauthbearer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "plain",
            SaslMechanism::ScramSha256 => "scram-sha-256",
            SaslMechanism::ScramSha512 => "scram-sha-512",
            SaslMechanism::OAuthBearer => "oauthbearer",
        }
    }

    /// The name brokers use in SaslHandshake: `PLAIN`, `SCRAM-SHA-256`, ...
    pub const fn kafka_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// An OAuth bearer token and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// The token (a JWT, usually).
    pub value: Secret,
    /// When the token expires; the client asks for a new one before then.
    pub expires_at: Option<SystemTime>,
}

impl Token {
    /// `value`, valid until `expires_at` (`None`: the broker decides).
    pub fn new(value: Secret, expires_at: Option<SystemTime>) -> Self {
        Token { value, expires_at }
    }
}

/// Where OAUTHBEARER tokens come from. The client asks at every authentication and
/// re-authentication; an implementation fetches a fresh token when the one it holds is
/// near its expiry.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::{BoxFuture, Secret, Token, TokenProvider};
///
/// #[derive(Debug)]
/// struct FromEnvironment;
///
/// impl TokenProvider for FromEnvironment {
///     fn token(&self) -> BoxFuture<'_, godev_kafka::Result<Token>> {
///         Box::pin(async {
///             let value = std::env::var("KAFKA_TOKEN").unwrap_or_default();
///             Ok(Token::new(Secret::new(value), None))
///         })
///     }
/// }
/// ```
pub trait TokenProvider: fmt::Debug + Send + Sync + 'static {
    /// A token valid now.
    ///
    /// # Errors
    ///
    /// No token could be had; the connection fails with this error.
    fn token(&self) -> BoxFuture<'_, Result<Token>>;
}

/// The same token every time (tests, or a token the deployment renews by restarting).
#[derive(Debug, Clone)]
pub struct StaticToken(pub Token);

impl TokenProvider for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<Token>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// SASL for broker connections (the `native` backend): the mechanism and the credentials.
///
/// # Examples
///
/// ```
/// use godev_kafka::transport::{SaslMechanism, SaslOptions, Secret};
///
/// let sasl = SaslOptions::password(SaslMechanism::ScramSha512, "alice", Secret::new("s3cret"));
/// assert!(!format!("{sasl:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SaslOptions {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user (PLAIN, SCRAM).
    pub username: String,
    /// The password (PLAIN, SCRAM).
    pub password: Secret,
    /// Where tokens come from (OAUTHBEARER).
    pub tokens: Option<Arc<dyn TokenProvider>>,
}

impl SaslOptions {
    /// PLAIN or SCRAM with `username` and `password`.
    pub fn password(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: Secret,
    ) -> Self {
        SaslOptions {
            mechanism,
            username: username.into(),
            password,
            tokens: None,
        }
    }

    /// OAUTHBEARER with tokens from `tokens`.
    pub fn oauthbearer(tokens: Arc<dyn TokenProvider>) -> Self {
        SaslOptions {
            mechanism: SaslMechanism::OAuthBearer,
            username: String::new(),
            password: Secret::new(""),
            tokens: Some(tokens),
        }
    }
}

impl PartialEq for SaslOptions {
    fn eq(&self, other: &Self) -> bool {
        self.mechanism == other.mechanism
            && self.username == other.username
            && self.password == other.password
            && match (&self.tokens, &other.tokens) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for SaslOptions {}
