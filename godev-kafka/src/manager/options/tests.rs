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
    expected.retry_backoff = Duration::from_millis(250);
    expected.request_timeout = Duration::from_secs(5);
    expected.delivery_timeout = Duration::from_secs(60);
    expected.buffer_bytes = 1024 * 1024;
    expected.max_block = Duration::from_secs(2);
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

// --- [kafka.security] -----------------------------------------------------------------------

#[cfg(any(feature = "confluent", feature = "native"))]
const PASSWORD: &str = "hunter2-Pa55";
#[cfg(feature = "native")]
const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";

/// `MINIMAL` (memory: it ignores the security keys) with `[kafka.security]` holding `body`,
/// and, when it names a user, `KAFKA_SECURITY_PASSWORD` set.
#[cfg(any(feature = "confluent", feature = "native"))]
fn secured(body: &str) -> Config {
    let text = format!("{MINIMAL}[kafka.security]\n{body}\n");
    Config::from_toml(&text, "config.toml", |name| {
        (name == "KAFKA_SECURITY_PASSWORD" && body.contains("username"))
            .then(|| PASSWORD.to_owned())
    })
    .unwrap()
}

/// A PEM file of the temp directory (the config opens the TLS files it names), removed
/// when dropped.
#[cfg(any(feature = "confluent", feature = "native"))]
struct Pem(std::path::PathBuf);

#[cfg(any(feature = "confluent", feature = "native"))]
impl Pem {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("godev-kafka-options-{}-{name}", std::process::id()));
        std::fs::write(&path, format!("-----BEGIN {name}-----\n")).unwrap();
        Pem(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

#[cfg(any(feature = "confluent", feature = "native"))]
impl Drop for Pem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `ssl` and `sasl_ssl` give TLS, `sasl_*` SASL (the password from the environment), and
/// `plaintext` neither; the TLS files and the host-name check reach the options.
#[cfg(feature = "native")]
#[test]
fn the_native_options_take_the_security_keys() {
    use crate::transport::{SaslMechanism, SaslOptions, Secret, TlsOptions};

    let plain = Manager::native_options(&config(MINIMAL));
    assert_eq!((plain.tls, plain.sasl), (None, None));

    let ca = Pem::new("ca-native.pem");
    let cert = Pem::new("cert-native.pem");
    let key = Pem::new("key-native.pem");
    let tls = TlsOptions {
        ca_file: Some(ca.path().into()),
        cert_file: Some(cert.path().into()),
        key_file: Some(key.path().into()),
        verify_hostname: false,
    };
    let files = format!(
        "ca_file = '{}'\ncert_file = '{}'\nkey_file = '{}'\nverify_hostname = false\n",
        ca.path(),
        cert.path(),
        key.path()
    );
    let ssl = Manager::native_options(&secured(&format!("protocol = \"ssl\"\n{files}")));
    assert_eq!(ssl.tls.as_ref(), Some(&tls));
    assert_eq!(ssl.sasl, None);

    let scram = "sasl_mechanism = \"scram-sha-512\"\nusername = \"alice\"\n";
    let sasl_ssl = Manager::native_options(&secured(&format!(
        "protocol = \"sasl_ssl\"\n{scram}{files}"
    )));
    let mut expected = NativeOptions::new(["k1:9092"]);
    expected.fetch_partition_max_bytes = DEFAULT_LARGEST;
    expected.tls = Some(tls);
    expected.sasl = Some(SaslOptions::password(
        SaslMechanism::ScramSha512,
        "alice",
        Secret::new(PASSWORD),
    ));
    assert_eq!(sasl_ssl, expected);

    let sasl_plaintext =
        Manager::native_options(&secured(&format!("protocol = \"sasl_plaintext\"\n{scram}")));
    assert_eq!(sasl_plaintext.tls, None);
    assert_eq!(sasl_plaintext.sasl, expected.sasl);

    let ssl_defaults = Manager::native_options(&secured("protocol = \"ssl\""));
    assert_eq!(ssl_defaults.tls, Some(TlsOptions::default()));
}

/// OAUTHBEARER gets the config's token as a static token provider.
#[cfg(feature = "native")]
#[tokio::test]
async fn the_native_options_give_the_configured_token() {
    use crate::transport::SaslMechanism;

    let options = Manager::native_options(&secured(&format!(
        "protocol = \"sasl_ssl\"\nsasl_mechanism = \"oauthbearer\"\ntoken = \"{TOKEN}\""
    )));
    let sasl = options.sasl.clone().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::OAuthBearer);
    let token = sasl.tokens.unwrap().token().await.unwrap();
    assert_eq!(token.value.expose(), TOKEN);
    assert_eq!(token.expires_at, None);
    assert_eq!(options.tls, Some(crate::transport::TlsOptions::default()));
    let debug = format!("{options:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[cfg(feature = "confluent")]
#[test]
fn the_confluent_options_take_the_security_keys() {
    use crate::transport::{SaslMechanism, SaslOptions, Secret, TlsOptions};

    let plain = Manager::confluent_options(&config(MINIMAL));
    assert_eq!((plain.tls, plain.sasl), (None, None));

    let ca = Pem::new("ca-confluent.pem");
    let options = Manager::confluent_options(&secured(&format!(
        "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"alice\"\n\
         ca_file = '{}'",
        ca.path()
    )));
    let tls = TlsOptions {
        ca_file: Some(ca.path().into()),
        ..TlsOptions::default()
    };
    assert_eq!(options.tls, Some(tls));
    assert_eq!(
        options.sasl,
        Some(SaslOptions::password(
            SaslMechanism::Plain,
            "alice",
            Secret::new(PASSWORD)
        ))
    );
    let debug = format!("{options:?} {options:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(
        debug.contains("alice") && debug.contains("<redacted>"),
        "{debug}"
    );

    let ssl = Manager::confluent_options(&secured("protocol = \"ssl\"\nverify_hostname = false"));
    assert!(!ssl.tls.unwrap().verify_hostname);
    assert_eq!(ssl.sasl, None);
}

/// Neither the manager's `Debug` nor its status, nor what it logs, shows the password.
#[cfg(any(feature = "confluent", feature = "native"))]
#[tokio::test]
async fn the_manager_shows_no_secret() {
    let config =
        secured("protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"alice\"");
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let manager = Manager::connect(&config).await.unwrap();
    tracing::info!(?config, "the config, as a service would log it");
    let shown = format!("{manager:?} {:?} {:#?}", manager.status(), manager.status());
    manager.close().await.unwrap();
    assert!(!shown.contains(PASSWORD), "{shown}");
    let logged = logs.text();
    assert!(logged.contains("alice"), "the config was logged: {logged}");
    assert!(!logged.contains(PASSWORD), "{logged}");
}

/// A backend that cannot reach its broker fails with an error (and logs) that name the user
/// but never the password.
#[cfg(feature = "native")]
#[tokio::test]
async fn a_failed_connect_shows_no_secret() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let text = format!(
        "[kafka]\nbrokers = [\"{addr}\"]\ngroup_id = \"g\"\nclient = \"native\"\n\
         [kafka.producer]\nrequest_timeout_ms = 1000\n\
         [kafka.security]\nprotocol = \"sasl_plaintext\"\nsasl_mechanism = \"scram-sha-256\"\n\
         username = \"alice\"\n"
    );
    let config = Config::from_toml(&text, "config.toml", |name| {
        (name == "KAFKA_SECURITY_PASSWORD").then(|| PASSWORD.to_owned())
    })
    .unwrap();
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let connect = Manager::connect(&config);
    let error = tokio::time::timeout(Duration::from_secs(30), connect)
        .await
        .expect("connect gives up")
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!logs.text().contains(PASSWORD), "{}", logs.text());
}

/// Every event and span field logged while it is the default subscriber, as text.
#[cfg(any(feature = "confluent", feature = "native"))]
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<String>>);

#[cfg(any(feature = "confluent", feature = "native"))]
impl Logs {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

#[cfg(any(feature = "confluent", feature = "native"))]
impl tracing::field::Visit for Logs {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0.lock().unwrap(), "{}={value:?} ", field.name());
    }
}

#[cfg(any(feature = "confluent", feature = "native"))]
impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut self.clone());
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut self.clone());
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut self.clone());
        self.0.lock().unwrap().push('\n');
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
