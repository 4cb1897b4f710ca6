//! The connection layer: every Kafka request the project writes itself goes through it.
//!
//! A [`Connection`] is one TCP connection to one broker, over TLS where the cluster has
//! [`Tls`] settings. It knows framing, API versions, correlation ids and timeouts, and
//! nothing about what is being asked: group membership, admin helpers and the native
//! backend's produce and fetch are its clients.
//!
//! # Guarantees
//!
//! - **Versions.** On connect the connection asks the broker for its API versions
//!   (ApiVersions v0, which every broker since 0.10 answers); [`Connection::version`] then
//!   picks, per API, the highest version both sides speak, or says there is none.
//! - **Pipelining.** Several requests may be in flight on one connection at once, from any
//!   number of tasks: each carries a fresh correlation id, and a reader task hands every
//!   response to the caller whose id it echoes, in whatever order the broker answers.
//! - **Bounded input.** A response frame longer than [`MAX_FRAME`](frame::MAX_FRAME) is refused before anything
//!   is allocated for it, and every response body is walked by the [`guard`] against its
//!   layout before `kafka-protocol` decodes it, so hostile counts are errors, not aborts.
//! - **Timeouts.** A request that gets no answer within its timeout fails with a retriable
//!   error and breaks the connection, as the Java client's does: a broker that hangs holds
//!   every request behind it, and a new connection is how to find out whether it is back.
//!   A caller that gives up on its own (its future dropped) leaves the connection as it is;
//!   a late answer to it is matched by id and dropped.
//!
//! # Failure modes
//!
//! Anything that puts the byte stream in doubt breaks the connection: a read or write
//! error, a frame over the cap, an answer to an id nobody asked, an answer that does not
//! decode. Every request in flight then fails with a retriable [`Error::Transport`](crate::Error)
//! naming the request and the broker, and [`Connection::is_broken`] tells the owner to
//! connect again.

mod broker;
mod cluster;
#[cfg(test)]
pub(crate) mod fake_broker;
mod frame;
pub(crate) mod guard; // pub(crate) for the fuzz entry points (feature `fuzzing`)
#[cfg(feature = "native")]
mod sasl;
#[cfg(feature = "native")]
mod tls;

pub(crate) use broker::Connection;
pub(crate) use cluster::{Cluster, Purpose};
#[cfg(feature = "native")]
pub(crate) use tls::Tls;

/// How every connection of a cluster is secured: TLS, SASL, both or neither.
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    pub(crate) tls: Option<Tls>,
    /// Only the `native` backend authenticates; without it this is always `None`.
    #[cfg_attr(not(feature = "native"), allow(dead_code))]
    pub(crate) sasl: Option<std::sync::Arc<crate::security::SaslOptions>>,
}

#[cfg(feature = "native")]
impl Security {
    /// TLS and SASL as the options ask (TLS files read now).
    ///
    /// # Errors
    ///
    /// A TLS file cannot be read or used.
    pub(crate) fn new(
        tls: Option<&crate::security::TlsOptions>,
        sasl: Option<&crate::security::SaslOptions>,
    ) -> crate::Result<Self> {
        Ok(Security {
            tls: tls.map(Tls::new).transpose()?,
            sasl: sasl.cloned().map(std::sync::Arc::new),
        })
    }
}

/// Without the `native` backend there is no TLS: no value of this type exists.
#[cfg(not(feature = "native"))]
#[derive(Debug, Clone)]
pub(crate) enum Tls {}

#[cfg(not(feature = "native"))]
impl Tls {
    pub(crate) async fn wrap(
        &self,
        _: tokio::net::TcpStream,
        _: &str,
    ) -> crate::Result<tokio::net::TcpStream> {
        match *self {}
    }
}
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use frame::decode_response;

use kafka_protocol::protocol::StrBytes;

/// A broker's supported version range for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) min: i16,
    pub(crate) max: i16,
}

/// The highest version in both the broker's range and ours.
pub(crate) fn negotiate(broker: Option<Range>, min: i16, max: i16) -> Option<i16> {
    let broker = broker?;
    let hi = broker.max.min(max);
    let lo = broker.min.max(min);
    (hi >= lo).then_some(hi)
}

/// A protocol string from a Rust string.
pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_highest_common_version() {
        let broker = Some(Range { min: 0, max: 7 });
        assert_eq!(negotiate(broker, 0, 9), Some(7));
        assert_eq!(negotiate(broker, 2, 5), Some(5));
        assert_eq!(negotiate(Some(Range { min: 3, max: 12 }), 0, 2), None);
        assert_eq!(negotiate(None, 0, 2), None);
    }
}
