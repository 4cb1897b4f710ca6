//! SASL authentication of a broker connection (KIP-43, KIP-152): SaslHandshake names the
//! mechanism, then SaslAuthenticate requests carry its messages until it is done. The
//! mechanisms themselves (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) are rsasl's.
//!
//! The broker may answer with a session lifetime (KIP-368, `connections.max.reauth.ms` or
//! the token's expiry); the connection is then replaced by a freshly authenticated one
//! before the lifetime ends ([`Connection::is_usable`]), so nothing is ever cut off.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, SessionError};
use rsasl::property::OAuthBearerToken;

use super::{Connection, sb};
use crate::security::{SaslMechanism, SaslOptions};
use crate::{Error, Result};

/// Authenticates `conn` as `options` say; answers the session lifetime the broker set, if
/// it set one.
///
/// # Errors
///
/// The broker does not offer the mechanism, refused the credentials
/// (`SASL_AUTHENTICATION_FAILED`, naming mechanism and user, never the password), or a
/// token could not be had.
pub(crate) async fn authenticate(
    conn: &Connection,
    options: &SaslOptions,
) -> Result<Option<Duration>> {
    let mechanism = options.mechanism;
    let op = || match mechanism {
        SaslMechanism::OAuthBearer => format!(
            "authenticate to broker {} with SASL {}",
            conn.addr(),
            mechanism.kafka_name()
        ),
        _ => format!(
            "authenticate to broker {} with SASL {} as `{}`",
            conn.addr(),
            mechanism.kafka_name(),
            options.username
        ),
    };
    let handshake = conn.version::<SaslHandshakeRequest>(ApiKey::SaslHandshake)?;
    if handshake < 1 {
        return Err(Error::transport(
            op(),
            "the broker is older than Kafka 1.0 (no SaslHandshake v1)",
            false,
        ));
    }
    let request = SaslHandshakeRequest::default().with_mechanism(sb(mechanism.kafka_name()));
    let response: SaslHandshakeResponse = conn
        .call(ApiKey::SaslHandshake, handshake, &request, None)
        .await?;
    if response.error_code != 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        let message = format!("the broker offers {}", offered.join(", "));
        return Err(Error::kafka_with(op(), response.error_code, Some(&message)));
    }

    let config = config(options).await.map_err(|e| match e {
        Error::Transport { message, .. } => Error::transport(op(), message, false),
        other => other,
    })?;
    let name = Mechname::parse(mechanism.kafka_name().as_bytes())
        .expect("Kafka's mechanism names are valid SASL names");
    let mut session = SASLClient::new(config)
        .start_suggested(&[name])
        .map_err(|e| Error::transport(op(), e.to_string(), false))?;
    let version = conn.version::<SaslAuthenticateRequest>(ApiKey::SaslAuthenticate)?;
    let mut input: Option<Bytes> = None;
    let mut lifetime = None;
    loop {
        let mut out = Vec::new();
        let state = session
            .step(input.as_deref(), &mut out)
            .map_err(|e| Error::transport(op(), e.to_string(), false))?;
        if state.has_sent_message() {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out));
            let response: SaslAuthenticateResponse = conn
                .call(ApiKey::SaslAuthenticate, version, &request, None)
                .await?;
            if response.error_code != 0 {
                return Err(Error::kafka_with(
                    op(),
                    response.error_code,
                    response.error_message.as_deref(),
                ));
            }
            if response.session_lifetime_ms > 0 {
                lifetime = Some(Duration::from_millis(response.session_lifetime_ms as u64));
            }
            input = Some(response.auth_bytes);
        }
        if state.is_finished() {
            return Ok(lifetime);
        }
    }
}

/// The rsasl configuration of `options`: its credentials, or a token fetched now.
async fn config(options: &SaslOptions) -> Result<std::sync::Arc<SASLConfig>> {
    let setup =
        |e: rsasl::prelude::SASLError| Error::transport("set up SASL", e.to_string(), false);
    match options.mechanism {
        SaslMechanism::OAuthBearer => {
            let Some(tokens) = &options.tokens else {
                return Err(Error::transport(
                    "set up SASL",
                    "OAUTHBEARER needs a token provider",
                    false,
                ));
            };
            let token = tokens.token().await?;
            SASLConfig::builder()
                .with_defaults()
                .with_callback(Bearer(token.value.expose().to_owned()))
                .map_err(setup)
        }
        _ => SASLConfig::with_credentials(
            None,
            options.username.clone(),
            options.password.expose().to_owned(),
        )
        .map_err(setup),
    }
}

/// Hands OAUTHBEARER its token.
struct Bearer(String);

impl SessionCallback for Bearer {
    fn callback(
        &self,
        _: &SessionData,
        _: &Context<'_>,
        request: &mut Request<'_>,
    ) -> std::result::Result<(), SessionError> {
        request.satisfy::<OAuthBearerToken>(self.0.as_str())?;
        Ok(())
    }
}
