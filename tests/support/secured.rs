//! Secured test brokers: what `dev/kafka start --security ...` wrote to its `client.env`
//! (the listener, the CA and client certificate files, the users), found through an
//! environment variable that names that file. Without it a test fails with the reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use godev_kafka::transport::native::{NativeOptions, NativeTransport};
use godev_kafka::transport::{
    SaslMechanism, SaslOptions, Secret, StaticToken, TlsOptions, Token, Transport,
};

use super::Backend;

/// Which secured broker: `sasl_ssl` (session lifetime 10 s) or `ssl` with client
/// certificates required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `dev/kafka start --security sasl_ssl --reauth-ms 10000`.
    SaslSsl,
    /// `dev/kafka start --security ssl --mtls`.
    MutualTls,
}

/// One secured broker's client settings.
#[derive(Debug, Clone)]
pub struct Secured {
    /// The secured listener, `host:port`.
    pub bootstrap: String,
    /// A plaintext listener of the same broker for the tests' own admin requests.
    pub internal: String,
    /// The `--mtls` broker's TLS listener that asks for no client certificate; empty on
    /// other brokers.
    pub tls_only: String,
    /// The CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// A client certificate and key the broker trusts (`CN=alice`).
    pub cert_file: PathBuf,
    /// The key of [`cert_file`](Self::cert_file).
    pub key_file: PathBuf,
    /// A CA that signed nothing the broker has.
    pub other_ca_file: PathBuf,
    /// User → password.
    pub users: HashMap<String, String>,
    /// The broker's own log (`dev/kafka` writes it at INFO beside `security/client.env`).
    pub server_log: PathBuf,
}

impl Secured {
    /// The broker of `listener` for Kafka `version` (`"3.9"` or `"4"`), from
    /// `GODEV_KAFKA_SASL_SSL` / `GODEV_KAFKA4_SASL_SSL` / `GODEV_KAFKA_MTLS` /
    /// `GODEV_KAFKA4_MTLS`, each the path of a broker's `client.env`.
    pub fn get(listener: Listener, version: &str) -> Secured {
        let major = if version == "3.9" { "" } else { "4" };
        let (kind, flags) = match listener {
            Listener::SaslSsl => ("SASL_SSL", "--security sasl_ssl --reauth-ms 10000"),
            Listener::MutualTls => ("MTLS", "--security ssl --mtls"),
        };
        let variable = format!("GODEV_KAFKA{major}_{kind}");
        let path = std::env::var(&variable).unwrap_or_else(|_| {
            panic!(
                "{variable} is not set: start a broker with `dev/kafka start --version {version} \
                 {flags} --port P` and set {variable} to its security/client.env (dev/test does \
                 both)"
            )
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{variable}={path}: cannot read it: {e}"));
        let values: HashMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let value = |key: &str| {
            values
                .get(key)
                .cloned()
                .unwrap_or_else(|| panic!("{path} has no `{key}=`"))
        };
        let users = value("users")
            .split_whitespace()
            .filter_map(|pair| pair.split_once(':'))
            .map(|(user, password)| (user.to_owned(), password.to_owned()))
            .collect();
        Secured {
            bootstrap: value("bootstrap"),
            internal: value("internal_bootstrap"),
            // Absent from the client.env of a broker started before dev/kafka wrote it.
            tls_only: values
                .get("tls_only_bootstrap")
                .cloned()
                .unwrap_or_default(),
            ca_file: value("ca_file").into(),
            cert_file: value("cert_file").into(),
            key_file: value("key_file").into(),
            other_ca_file: value("other_ca_file").into(),
            users,
            server_log: PathBuf::from(&path)
                .parent()
                .and_then(|security| security.parent())
                .map(|run| run.join("logs/server.log"))
                .unwrap_or_else(|| panic!("{path} is not in a dev/kafka run directory")),
        }
    }

    /// How many SASL logins with wrong credentials the broker has logged so far (its
    /// `Failed authentication` lines, which the broker writes as it closes the connection).
    pub fn failed_sasl_logins(&self) -> usize {
        let log = std::fs::read_to_string(&self.server_log)
            .unwrap_or_else(|e| panic!("{}: cannot read it: {e}", self.server_log.display()));
        log.lines()
            .filter(|line| line.contains("Failed authentication with"))
            .filter(|line| {
                line.contains("invalid credentials")
                    || line.contains("Invalid username or password")
            })
            .count()
    }

    /// The password of `user`.
    pub fn password(&self, user: &str) -> Secret {
        Secret::new(self.users.get(user).cloned().unwrap_or_default())
    }

    /// TLS trusting the broker's CA.
    pub fn tls(&self) -> TlsOptions {
        let mut tls = TlsOptions::default();
        tls.ca_file = Some(self.ca_file.clone());
        tls
    }

    /// TLS trusting the broker's CA, with the client certificate.
    pub fn mutual_tls(&self) -> TlsOptions {
        let mut tls = self.tls();
        tls.cert_file = Some(self.cert_file.clone());
        tls.key_file = Some(self.key_file.clone());
        tls
    }

    /// SASL as `user` with `mechanism`: the user's password, or for OAUTHBEARER an unsecured
    /// JWT naming the user (the broker's test validator accepts `alg: none`).
    pub fn sasl(&self, mechanism: SaslMechanism, user: &str) -> SaslOptions {
        match mechanism {
            SaslMechanism::OAuthBearer => {
                SaslOptions::oauthbearer(Arc::new(StaticToken(unsecured_jwt(user))))
            }
            _ => SaslOptions::password(mechanism, user, self.password(user)),
        }
    }

    /// Native options for the secured listener, short timeouts and linger.
    pub fn options(&self, tls: Option<TlsOptions>, sasl: Option<SaslOptions>) -> NativeOptions {
        let mut options = NativeOptions::new([self.bootstrap.clone()]);
        options.client_id = "godev-kafka-security-tests".into();
        options.linger = Duration::from_millis(2);
        options.request_timeout = Duration::from_secs(10);
        options.tls = tls;
        options.sasl = sasl;
        options
    }

    /// A transport of `backend` (native or confluent) on the secured listener, or the error
    /// connecting gave.
    pub async fn connect(
        &self,
        backend: Backend,
        tls: Option<TlsOptions>,
        sasl: Option<SaslOptions>,
    ) -> godev_kafka::Result<Arc<dyn Transport>> {
        match backend {
            #[cfg(feature = "confluent")]
            Backend::Confluent => {
                use godev_kafka::transport::confluent::{ConfluentOptions, ConfluentTransport};
                let mut options = ConfluentOptions::new([self.bootstrap.clone()]);
                options.client_id = "godev-kafka-security-tests".into();
                options.linger = Duration::from_millis(2);
                options.request_timeout = Duration::from_secs(10);
                options.tls = tls;
                options.sasl = sasl;
                Ok(Arc::new(ConfluentTransport::connect(options).await?))
            }
            Backend::Native3 | Backend::Native4 => Ok(Arc::new(
                NativeTransport::connect(self.options(tls, sasl)).await?,
            )),
            other => panic!("{other:?} has no secured connections"),
        }
    }
}

/// An unsecured JWT (`alg: none`) for `user`, valid for an hour.
pub fn unsecured_jwt(user: &str) -> Token {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"{user}","iat":{now},"exp":{}}}"#,
        now + 3600
    ));
    Token::new(
        Secret::new(format!("{header}.{claims}.")),
        Some(UNIX_EPOCH + Duration::from_secs(now + 3600)),
    )
}
