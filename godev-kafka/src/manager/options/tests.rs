//! Every key reaches the field of each backend's options that it maps to, keys left unset keep
//! the backend's defaults, and `auto` is checked again against the backend it picked.

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use std::time::Duration;

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use super::*;
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
use crate::transport::{Acks, Compression};

/// Every producer and fetch key set, for the memory client (which refuses none of them).
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
const FULL: &str = r#"
[kafka]
brokers = ["k1:9092", "k2:9092"]
group_id = "g"
client = "memory"
[kafka.producer]
acks = "all"
compression = "zstd"
linger_ms = 7
batch_size = 100
batch_bytes = 65536
max_in_flight = 3
idempotence = true
retries = 2
retry_backoff_ms = 250
request_timeout_ms = 5000
delivery_timeout_ms = 60000
buffer_bytes = 1048576
max_block_ms = 2000
[kafka.consumer]
fetch_min_bytes = 1024
fetch_max_bytes = 8388608
fetch_partition_max_bytes = 4194304
fetch_max_wait_ms = 200
isolation_level = "read_committed"
group_instance_id = "pod-1"
"#;

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
fn config(text: &str) -> Config {
    Config::from_toml(text, "config.toml", |_| None).unwrap()
}

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
const MINIMAL: &str = "[kafka]\nbrokers = [\"k1:9092\"]\ngroup_id = \"g\"\nclient = \"memory\"\n";

/// The per-partition fetch limit that lets the default `max_record_bytes` (1 MiB) through.
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
const DEFAULT_LARGEST: i32 = 1024 * 1024 + 64 * 1024;

#[cfg(feature = "kafka")]
#[test]
fn the_kafka_options_take_every_key_the_kafka_backend_honours() {
    let mut expected = KafkaOptions::new(["k1:9092", "k2:9092"]);
    expected.acks = Acks::All;
    expected.compression = Compression::Zstd;
    expected.linger = Duration::from_millis(7);
    expected.batch_size = 100;
    expected.retries = 2;
    expected.retry_backoff = Duration::from_millis(250);
    expected.request_timeout = Duration::from_secs(5);
    expected.fetch_max_bytes = 4 * 1024 * 1024;
    assert_eq!(Manager::kafka_options(&config(FULL)), expected);

    let mut defaults = KafkaOptions::new(["k1:9092"]);
    defaults.fetch_max_bytes = DEFAULT_LARGEST;
    assert_eq!(Manager::kafka_options(&config(MINIMAL)), defaults);
}

#[cfg(feature = "native")]
#[test]
fn the_native_options_take_every_key_the_native_backend_honours() {
    use crate::transport::Isolation;
    use crate::transport::native::NativeOptions;

    let mut expected = NativeOptions::new(["k1:9092", "k2:9092"]);
    expected.acks = Acks::All;
    expected.idempotence = true;
    expected.compression = Compression::Zstd;
    expected.linger = Duration::from_millis(7);
    expected.batch_bytes = 65536;
    expected.max_in_flight = 3;
    expected.retry_backoff = Duration::from_millis(250);
    expected.request_timeout = Duration::from_secs(5);
    expected.delivery_timeout = Duration::from_secs(60);
    expected.buffer_bytes = 1024 * 1024;
    expected.max_block = Duration::from_secs(2);
    expected.fetch_min_bytes = 1024;
    expected.fetch_max_bytes = 8 * 1024 * 1024;
    expected.fetch_partition_max_bytes = 4 * 1024 * 1024;
    expected.fetch_max_wait = Duration::from_millis(200);
    expected.isolation = Isolation::ReadCommitted;
    assert_eq!(Manager::native_options(&config(FULL)), expected);

    let mut defaults = NativeOptions::new(["k1:9092"]);
    defaults.fetch_partition_max_bytes = DEFAULT_LARGEST;
    assert_eq!(Manager::native_options(&config(MINIMAL)), defaults);
}

#[cfg(feature = "confluent")]
#[test]
fn the_confluent_options_take_every_key_the_confluent_backend_honours() {
    use crate::transport::Isolation;
    use crate::transport::confluent::ConfluentOptions;

    let mut expected = ConfluentOptions::new(["k1:9092", "k2:9092"]);
    expected.acks = Acks::All;
    expected.idempotence = true;
    expected.compression = Compression::Zstd;
    expected.linger = Duration::from_millis(7);
    expected.batch_bytes = 65536;
    expected.max_in_flight = 3;
    expected.retry_backoff = Duration::from_millis(250);
    expected.request_timeout = Duration::from_secs(5);
    expected.delivery_timeout = Some(Duration::from_secs(60));
    expected.buffer_bytes = 1024 * 1024;
    expected.max_block = Duration::from_secs(2);
    expected.fetch_min_bytes = 1024;
    expected.fetch_response_max_bytes = 8 * 1024 * 1024;
    expected.fetch_max_bytes = 4 * 1024 * 1024;
    expected.fetch_max_wait = Duration::from_millis(200);
    expected.isolation = Isolation::ReadCommitted;
    assert_eq!(Manager::confluent_options(&config(FULL)), expected);

    let mut defaults = ConfluentOptions::new(["k1:9092"]);
    defaults.fetch_max_bytes = DEFAULT_LARGEST;
    assert_eq!(Manager::confluent_options(&config(MINIMAL)), defaults);
}

/// Idempotence follows `idempotence` when it is set, else `acks = "all"` with at most 5
/// requests in flight, as the Java client decides.
#[cfg(feature = "native")]
#[test]
fn idempotence_defaults_to_acks_all_with_at_most_five_in_flight() {
    let cases = [
        ("", true),
        ("acks = \"one\"\n", false),
        ("acks = \"none\"\n", false),
        ("max_in_flight = 5\n", true),
        ("max_in_flight = 6\n", false),
        ("idempotence = false\n", false),
        ("idempotence = true\nacks = \"all\"\n", true),
    ];
    for (producer, idempotent) in cases {
        let text = format!("{MINIMAL}[kafka.producer]\n{producer}");
        let options = Manager::native_options(&config(&text));
        assert_eq!(options.idempotence, idempotent, "{producer}");
    }
}

/// A record larger than the per-partition fetch limit would stall the `kafka` backend's
/// partition, so the limit always fits the largest record the consumer accepts.
#[cfg(feature = "kafka")]
#[test]
fn the_fetch_limit_covers_the_largest_record_the_consumer_accepts() {
    let big = config(&format!(
        "{MINIMAL}[kafka.consumer]\nmax_record_bytes = 4194304\nfetch_partition_max_bytes = 1024\n"
    ));
    assert_eq!(
        Manager::kafka_options(&big).fetch_max_bytes,
        4 * 1024 * 1024 + 64 * 1024
    );
}

/// A broker whose Fetch versions are `fetch`.
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
fn broker(fetch: (i16, i16)) -> BrokerFeatures {
    BrokerFeatures {
        broker: "b:1".into(),
        apis: std::collections::BTreeMap::from([(1, fetch)]),
    }
}

/// A listener that answers one ApiVersions request with `body`; its address.
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
async fn answer_api_versions(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let size = stream.read_i32().await.unwrap();
        let mut request = vec![0; size as usize];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_i32(body.len() as i32).await.unwrap();
        stream.write_all(&body).await.unwrap();
    });
    addr
}

#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
#[test]
fn auto_picks_native_when_built_else_the_backend_the_broker_speaks() {
    let native = |otherwise| {
        if cfg!(feature = "native") {
            Client::Native
        } else {
            otherwise
        }
    };
    assert_eq!(
        Manager::auto_client(&broker((4, 17))),
        native(Client::Confluent)
    );
    assert_eq!(
        Manager::auto_client(&broker((0, 16))),
        native(Client::Kafka)
    );
    assert_eq!(Manager::auto_client(&broker((0, 3))), Client::Kafka);
}

/// `auto` on a broker older than Kafka 0.11 picks `kafka`, which cannot read committed only:
/// `connect` refuses the key with the same check as a load for `client = "kafka"`, before it
/// builds a transport.
#[cfg(any(feature = "kafka", feature = "confluent", feature = "native"))]
#[tokio::test]
async fn connect_checks_the_keys_against_the_backend_auto_picked() {
    let mut body = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for v in [1i16, 0, 3] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    let addr = answer_api_versions(body).await;
    let text = format!(
        "[kafka]\nbrokers = [\"{addr}\"]\ngroup_id = \"g\"\nclient = \"auto\"\n\
         [kafka.consumer]\nisolation_level = \"read_committed\"\n"
    );
    let config = Config::from_toml(&text, "config.toml", |_| None).unwrap();
    let error = Manager::connect(&config).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "config key `kafka.consumer.isolation_level`: `client = \"auto\"` picked `kafka`: the \
         `kafka` client speaks Fetch v0, which reads every record, committed or not; use \
         `client = \"native\"` or `\"confluent\"`, or `read_uncommitted`"
    );
    assert_eq!(
        config.check_client(Client::Kafka).unwrap_err().to_string(),
        error.to_string(),
        "one check, at load and at connect"
    );
}
