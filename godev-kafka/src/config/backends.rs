//! Which keys each backend honours. A key the file or the environment set that the chosen
//! backend cannot honour is refused, naming the key, the backend and what to use instead;
//! a key left at its default is never refused. The `memory` backend ignores the producer,
//! fetch and security keys and refuses nothing of theirs.
//!
//! `retries` is refused for every backend, `memory` included: no producer counts retries any
//! more (each retries a send until `delivery_timeout_ms`), and a key that is read but does
//! nothing would surprise whoever set it. It stays a known key, so that the error says so
//! rather than "unknown key".

use super::schema::*;
use super::{Client, Config, SecurityProtocol, error};
use crate::Result;
use crate::options::{Compression, Isolation};
use crate::security::SaslMechanism;

/// A key `client` cannot honour as the config sets it.
struct Refusal {
    section: &'static Section,
    key: &'static Key,
    /// What the backend does, and that it cannot honour the key.
    reason: String,
    /// What to write instead.
    alternative: &'static str,
}

fn refuse(
    section: &'static Section,
    key: &'static Key,
    reason: impl Into<String>,
    alternative: &'static str,
) -> Refusal {
    Refusal {
        section,
        key,
        reason: reason.into(),
        alternative,
    }
}

/// `retries`, which no backend uses, or else the first key `config` sets that `client` cannot
/// honour, as an [`Error::Config`](crate::Error) naming the key as the config read it (the
/// dotted key, or the variable).
pub(super) fn check(config: &Config, client: Client) -> Result<()> {
    no_longer_used(config)?;
    for refusal in refusals(config, client) {
        let Some(name) = config.origins.get(&refusal.section.dotted(refusal.key)) else {
            continue;
        };
        let picked = if config.client == Client::Auto {
            format!("`client = \"auto\"` picked `{client}`: ")
        } else {
            String::new()
        };
        return Err(error(
            name,
            format!(
                "{picked}the `{client}` client {}; use {}",
                refusal.reason, refusal.alternative
            ),
        ));
    }
    Ok(())
}

/// `retries`, if the config sets it, as an [`Error::Config`](crate::Error) naming it as the
/// config read it, whatever the backend.
fn no_longer_used(config: &Config) -> Result<()> {
    match config.origins.get(&PRODUCER.dotted(&RETRIES)) {
        Some(name) => Err(error(
            name,
            format!(
                "no longer used: the `kafka` backend, like `native` and `confluent`, retries a \
                 send until `delivery_timeout_ms`, not a number of times; remove `{name}`"
            ),
        )),
        None => Ok(()),
    }
}

/// The keys `client` cannot honour with the values `config` has, in the schema's order.
fn refusals(config: &Config, client: Client) -> Vec<Refusal> {
    const NATIVE: &str = "`client = \"native\"` or remove it";
    let (p, c) = (&PRODUCER, &CONSUMER);
    match client {
        Client::Kafka => {
            let mut refusals = Vec::new();
            if let Some(codec @ (Compression::Lz4 | Compression::Zstd)) =
                config.producer.compression
            {
                refusals.push(refuse(
                    p,
                    &COMPRESSION,
                    format!(
                        "writes gzip and snappy batches only (the `kafka` crate has no {})",
                        codec.as_str()
                    ),
                    "`client = \"native\"` or `\"confluent\"`, or gzip or snappy",
                ));
            }
            refusals.extend([
                refuse(
                    p,
                    &BATCH_BYTES,
                    "limits a batch by records, not bytes, and cannot honour this key",
                    "`batch_size` (records), or `client = \"native\"`",
                ),
                refuse(
                    p,
                    &MAX_IN_FLIGHT,
                    "sends one request at a time and cannot honour this key",
                    NATIVE,
                ),
            ]);
            if config.producer.idempotence == Some(true) {
                refusals.push(refuse(
                    p,
                    &IDEMPOTENCE,
                    "has no idempotent producer",
                    "`client = \"native\"` or `\"confluent\"`, or `idempotence = false`",
                ));
            }
            refusals.extend([
                refuse(
                    c,
                    &FETCH_MIN_BYTES,
                    "asks the broker to answer a fetch at its first byte and cannot honour this key",
                    NATIVE,
                ),
                refuse(
                    c,
                    &FETCH_MAX_BYTES,
                    "speaks Fetch v0, which has no response limit, and cannot honour this key",
                    "`fetch_partition_max_bytes`, or `client = \"native\"`",
                ),
                refuse(
                    c,
                    &FETCH_MAX_WAIT_MS,
                    "waits for records as long as the poll does and cannot honour this key",
                    "`poll_wait_ms`, or `client = \"native\"`",
                ),
            ]);
            if config.fetch.isolation == Isolation::ReadCommitted {
                refusals.push(refuse(
                    c,
                    &ISOLATION_LEVEL,
                    "speaks Fetch v0, which reads every record, committed or not",
                    "`client = \"native\"` or `\"confluent\"`, or `read_uncommitted`",
                ));
            }
            let protocol = config.security.protocol;
            if protocol != SecurityProtocol::Plaintext {
                refusals.push(refuse(
                    &SECURITY,
                    &PROTOCOL,
                    format!(
                        "connects in plaintext only (the `kafka` crate has no SASL, and its TLS \
                         needs OpenSSL, which this project does not link) and cannot honour \
                         `{protocol}`"
                    ),
                    "`client = \"native\"` (cargo feature `native`: TLS and every SASL \
                     mechanism)",
                ));
            }
            refusals
        }
        Client::Native => shared_refusals(),
        Client::Confluent => {
            let mut refusals = shared_refusals();
            let mechanism = config.security.sasl.as_ref().map(|sasl| sasl.mechanism);
            if let Some(
                mechanism @ (SaslMechanism::ScramSha256
                | SaslMechanism::ScramSha512
                | SaslMechanism::OAuthBearer),
            ) = mechanism
            {
                refusals.push(refuse(
                    &SECURITY,
                    &SASL_MECHANISM,
                    format!(
                        "authenticates with SASL PLAIN only (the `confluent-kafka` crate has no \
                         {})",
                        mechanism.kafka_name()
                    ),
                    "`client = \"native\"` (cargo feature `native`: every SASL mechanism), or \
                     `sasl_mechanism = \"plain\"`",
                ));
            }
            refusals
        }
        // `auto` is checked once it picked; `memory` ignores these keys.
        Client::Auto | Client::Memory => Vec::new(),
    }
}

/// What neither the `native` nor the `confluent` client can honour.
fn shared_refusals() -> Vec<Refusal> {
    vec![refuse(
        &PRODUCER,
        &BATCH_SIZE,
        "limits a batch by bytes, not records, and cannot honour this key",
        "`batch_bytes`",
    )]
}
