//! The `confluent-kafka` crate's errors as this project's [`Error`].
//!
//! The crate keeps each error's Kafka code private but answers public class predicates
//! (`is_topic_authorization_error`, ...), so the errors a user matches on become
//! [`Error::Kafka`] with their [`KafkaCode`]; the rest stay [`Error::Transport`]. Either way
//! the message carries the crate's cause chain, where a TLS handshake failure keeps the
//! reason rustls gave (`invalid peer certificate: UnknownIssuer`).

use confluent_kafka::common::Error as KafkaError;

use crate::{Error, KafkaCode};

/// Whether a crate error is of one class (one of the crate's `is_*_error` predicates).
type IsClass = fn(&KafkaError) -> bool;

/// The classes this project gives a typed code, with the predicate that recognises each.
const TYPED: [(IsClass, KafkaCode); 5] = [
    (
        KafkaError::is_topic_authorization_error,
        KafkaCode::TOPIC_AUTHORIZATION_FAILED,
    ),
    (
        KafkaError::is_group_authorization_error,
        KafkaCode::GROUP_AUTHORIZATION_FAILED,
    ),
    (
        KafkaError::is_cluster_authorization_error,
        KafkaCode::CLUSTER_AUTHORIZATION_FAILED,
    ),
    (
        KafkaError::is_transactional_id_authorization_error,
        KafkaCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ),
    (
        KafkaError::is_sasl_authentication_error,
        KafkaCode::SASL_AUTHENTICATION_FAILED,
    ),
];

/// `operation` failed with the crate's error `e`: typed where [`TYPED`] knows its class,
/// else a transport error, retriable where the crate says so.
pub(super) fn failed(operation: impl Into<String>, e: &KafkaError) -> Error {
    let text = describe(e);
    match TYPED.iter().find(|(is, _)| is(e)) {
        Some((_, code)) => Error::kafka_with(operation, code.code(), Some(text)),
        None => Error::transport(
            operation,
            text,
            e.is_retriable_error() || e.is_timeout_error(),
        ),
    }
}

/// `e` and its causes, outermost first: `SslAuthenticationError: SSL handshake failed:
/// invalid peer certificate: UnknownIssuer`. A cause whose text the outer one already holds
/// is not repeated.
fn describe(e: &KafkaError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let message = c.message();
        if !message.is_empty() && !text.contains(message) {
            text.push_str(": ");
            text.push_str(message);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use confluent_kafka::common::errors::{SaslAuthenticationError, SslAuthenticationError};

    use super::*;

    #[test]
    fn an_authentication_error_keeps_its_code() {
        let e = KafkaError::SaslAuthentication(SaslAuthenticationError::new(
            "Authentication failed: Invalid username or password",
        ));
        let error = failed("describe cluster", &e);
        assert_eq!(
            error.kafka_code(),
            Some(KafkaCode::SASL_AUTHENTICATION_FAILED)
        );
        assert!(!error.is_retriable());
        assert!(error.to_string().contains("Invalid username"), "{error}");
    }

    #[test]
    fn a_tls_failure_keeps_the_reason_rustls_gave() {
        let e = KafkaError::SslAuthentication(SslAuthenticationError::with_source(
            "SSL handshake failed",
            KafkaError::kafka_message("invalid peer certificate: UnknownIssuer"),
        ));
        let error = failed("describe cluster", &e);
        assert_eq!(error.kafka_code(), None);
        assert!(!error.is_retriable());
        assert_eq!(
            error.to_string(),
            "describe cluster failed: SslAuthenticationError: SSL handshake failed: invalid peer \
             certificate: UnknownIssuer"
        );
    }
}
