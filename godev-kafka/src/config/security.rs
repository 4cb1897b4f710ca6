//! The `[kafka.security]` keys as the config read them, typed and checked.

use std::fmt;

use crate::security::{SaslMechanism, Secret, TlsOptions};

/// How connections to the brokers are made (`kafka.security.protocol`; Kafka's
/// `security.protocol`).
///
/// | Protocol | TLS | SASL | Backends |
/// |---|---|---|---|
/// | `plaintext` (default) | no | no | all |
/// | `ssl` | yes | no | `native`, `confluent` |
/// | `sasl_plaintext` | no | yes | `native`, `confluent` (PLAIN only) |
/// | `sasl_ssl` | yes | yes | `native`, `confluent` (PLAIN only) |
///
/// # Examples
///
/// ```
/// use godev_kafka::config::SecurityProtocol;
///
/// let protocol = SecurityProtocol::SaslSsl;
/// assert!(protocol.uses_tls() && protocol.uses_sasl());
/// assert_eq!(protocol.as_str(), "sasl_ssl");
/// assert_eq!(SecurityProtocol::default(), SecurityProtocol::Plaintext);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL (a client certificate may authenticate the client: mutual TLS).
    Ssl,
    /// SASL over plain TCP (the credentials and the records travel in the clear).
    SaslPlaintext,
    /// SASL over TLS: what managed Kafka services ask for.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in the order of the config's accepted values.
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// The name the config uses: `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether connections are wrapped in TLS (`ssl`, `sasl_ssl`).
    pub const fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL (`sasl_plaintext`, `sasl_ssl`).
    pub const fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The protocol the config names `name` ([`SecurityProtocol::as_str`]).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[kafka.security]` keys, typed and checked ([`Config::security`](super::Config::security)).
/// The [`Manager`](crate::Manager) turns them into a backend's TLS and SASL options.
///
/// The passwords and tokens are [`Secret`]s, so the `Debug` of this (and of the whole
/// [`Config`](super::Config)) prints `<redacted>` for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecuritySettings {
    /// `protocol`.
    pub protocol: SecurityProtocol,
    /// `ca_file`, `cert_file`, `key_file` and `verify_hostname`; `Some` exactly when
    /// [`protocol`](Self::protocol) uses TLS. Every file named exists and could be read
    /// when the config was loaded.
    pub tls: Option<TlsOptions>,
    /// `sasl_mechanism` and its credentials; `Some` exactly when
    /// [`protocol`](Self::protocol) uses SASL.
    pub sasl: Option<SaslSettings>,
}

/// The SASL mechanism and the credentials `[kafka.security]` gives: `username` and
/// `password` (or `password_file`) for PLAIN and SCRAM, `token` (or `token_file`) for
/// OAUTHBEARER.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslSettings {
    /// `sasl_mechanism`.
    pub mechanism: SaslMechanism,
    /// `username`: set for PLAIN and SCRAM, `None` for OAUTHBEARER.
    pub username: Option<String>,
    /// `password`, or what `password_file` holds (its trailing newline trimmed): set for
    /// PLAIN and SCRAM, `None` for OAUTHBEARER.
    pub password: Option<Secret>,
    /// `token`, or what `token_file` holds (its trailing newline trimmed): set for
    /// OAUTHBEARER, `None` for the others.
    pub token: Option<Secret>,
}
