//! What the codec targets share: five event shapes, as services declare them, and the
//! decode / re-encode / decode check run on each.

use std::collections::BTreeMap;
use std::fmt::Debug;

use godev_kafka::Event;
use godev_kafka::event::{Codec, Timestamp};
use serde::{Deserialize, Serialize};

/// A plain struct, laid out like the Go kit's events (`id` first, tag after it).
#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "user_events", name = "user.created", key = "user_id")]
pub struct UserCreated {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    #[serde(default)]
    pub active: bool,
}

/// An enum with several tags and every variant shape.
#[derive(Debug, PartialEq, Event)]
#[event(topic = "order_events", key = "order_id")]
pub enum OrderEvent {
    #[event(name = "order.placed")]
    Placed {
        order_id: String,
        amount_cents: i64,
        #[serde(default)]
        items: Vec<String>,
    },
    #[event(name = "order.shipped")]
    Shipped(Shipment),
    #[event(name = "order.pair")]
    Pair(i64, String),
    #[event(name = "order.cancelled", key = "r#type")]
    Cancelled {
        r#type: String,
        #[serde(rename = "why", default)]
        reason: Option<String>,
    },
    #[event(name = "order.heartbeat")]
    Heartbeat,
}

/// The payload of [`OrderEvent::Shipped`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub order_id: String,
    pub carrier: Option<String>,
}

/// Nested structs, optional members, defaults, a timestamp and free-form JSON.
#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "profile_events", name = "profile.updated")]
pub struct ProfileUpdated {
    pub user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<User>,
    #[serde(default)]
    pub changed_at: Option<Timestamp>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<Vec<Address>>>,
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
}

/// A user, nested in [`ProfileUpdated`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub address: Option<Address>,
    #[serde(default)]
    pub manager: Option<Box<User>>,
}

/// An address, nested twice.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub city: String,
    #[serde(rename = "zip", default)]
    pub postal_code: Option<String>,
}

/// Every number type a payload may hold, but `f32`: serde reads a JSON number beyond
/// `f32::MAX` (`3.5e38`) into an `f32` as infinity, which serializes as `null`. That is
/// serde's documented cast, the same for every JSON codec, so it is left out here.
#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "metrics", name = "metric.sampled", key = "sensor")]
pub struct MetricSampled {
    pub sensor: u32,
    pub count: u64,
    pub delta: i64,
    pub small: i8,
    pub byte: u8,
    pub ratio: f64,
    #[serde(default)]
    pub big: Option<u128>,
    #[serde(default)]
    pub signed_big: Option<i128>,
    #[serde(default)]
    pub samples: Vec<f64>,
}

/// Strings: escapes, non-ASCII text, a char, lists and maps of strings.
#[derive(Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "chat_events", name = "message.posted", key = "room")]
pub struct MessagePosted {
    pub room: String,
    pub text: String,
    #[serde(default)]
    pub initial: Option<char>,
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The `source` the targets encode with.
pub const SOURCE: &str = "godev-kafka-fuzz";

/// Decodes `value` with `codec` as `E`; whatever decodes must re-encode and decode again
/// to the same event with the same tag.
pub fn round_trip<E: Event + PartialEq + Debug>(codec: Codec, value: &[u8]) {
    let Ok(first) = codec.decode::<E>(value) else {
        return;
    };
    assert_eq!(
        first.tag,
        first.data.tag(),
        "decoded tag and the event's tag differ"
    );
    let encoded = codec
        .encode(&first.data, SOURCE)
        .unwrap_or_else(|e| panic!("decoded {:?} does not re-encode: {e}", first.data));
    let second = codec.decode::<E>(&encoded).unwrap_or_else(|e| {
        panic!(
            "re-encoded {:?} does not decode: {e}\nre-encoded: {}",
            first.data,
            String::from_utf8_lossy(&encoded)
        )
    });
    assert_eq!(
        first.data,
        second.data,
        "round trip changed the event; re-encoded: {}",
        String::from_utf8_lossy(&encoded)
    );
    assert_eq!(first.tag, second.tag);
}

/// [`round_trip`] for each of the five shapes.
pub fn round_trip_all(codec: Codec, value: &[u8]) {
    round_trip::<UserCreated>(codec, value);
    round_trip::<OrderEvent>(codec, value);
    round_trip::<ProfileUpdated>(codec, value);
    round_trip::<MetricSampled>(codec, value);
    round_trip::<MessagePosted>(codec, value);
}
