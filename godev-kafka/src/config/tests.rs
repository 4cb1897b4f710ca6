//! The config's behaviour through its public entry points: every error message exactly,
//! defaults, the environment overlay, and the repository's example file.

use std::collections::HashMap;
use std::time::Duration;

use super::schema::{KAFKA, Kind, SECTIONS, SECURITY};
use super::*;
use crate::options::{Acks, Compression, Isolation, OffsetReset};
use crate::security::{SaslMechanism, Secret, TlsOptions};

const MINIMAL: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
group_id = "g"
"#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_toml(text, "config.toml", |name| env.get(name).cloned())
}

/// The error of `text` under `env`: its key, and its whole `Display`.
#[track_caller]
fn fails(text: &str, env: &[(&str, &str)]) -> (String, String) {
    match load(text, env) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e @ Error::Config { .. }) => {
            let shown = e.to_string();
            let Error::Config { key, .. } = e else {
                unreachable!()
            };
            (key, shown)
        }
        Err(other) => panic!("expected a config error, got {other:?}"),
    }
}

#[track_caller]
fn assert_fails(text: &str, env: &[(&str, &str)], key: &str, message: &str) {
    assert_eq!(
        fails(text, env),
        (key.to_owned(), format!("config key `{key}`: {message}"))
    );
}

/// `MINIMAL` plus `extra`.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn a_minimal_file_takes_every_default() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.brokers(), ["127.0.0.1:9092"]);
    assert_eq!(config.group_id(), "g");
    assert_eq!(config.client(), Client::Kafka);
    assert_eq!(config.codec(), Codec::CloudEvents);
    assert_eq!(config.source(), "godev-kafka");
    assert!(config.topics().is_empty());
    assert!(config.producer_enabled());
    assert!(config.consumer_enabled());
    assert_eq!(config.consumer_settings(), ConsumerSettings::default());
    assert_eq!(config.unknown_tag(), UnknownTagPolicy::Skip);
    assert_eq!(config.producer_tuning(), &ProducerTuning::default());
    assert_eq!(config.fetch_tuning(), &FetchTuning::default());
    assert_eq!(config.fetch_tuning().isolation, Isolation::ReadUncommitted);
    assert!(config.producer_tuning().idempotent());
    assert_eq!(config.consumer_settings().group_instance_id, None);
    assert_eq!(config.security(), &SecuritySettings::default());
    assert_eq!(config.security().protocol, SecurityProtocol::Plaintext);
}

#[test]
fn a_full_file_sets_every_key() {
    let text = r#"
        [kafka]
        brokers = ["kafka-1:9092", "[::1]:9093", "10.0.0.3:9094"]
        group_id = "godev-kit-group"
        client = "memory"
        codec = "tagged"
        source = "godev-kit"
        [kafka.topics]
        user_events = "user-events"
        translation_events = "translation-events"
        [kafka.control]
        producer_enabled = false
        consumer_enabled = true
        [kafka.producer]
        acks = "one"
        compression = "gzip"
        linger_ms = 7
        batch_size = 100
        retry_backoff_ms = 250
        request_timeout_ms = 5000
        batch_bytes = 65536
        max_in_flight = 3
        idempotence = false
        delivery_timeout_ms = 60000
        buffer_bytes = 1048576
        max_block_ms = 2000
        [kafka.consumer]
        offset_reset = "latest"
        unknown_tag = "dead_letter"
        session_timeout_ms = 6000
        heartbeat_interval_ms = 2000
        rebalance_timeout_ms = 20000
        max_poll_interval_ms = 90000
        poll_wait_ms = 50
        queue_capacity = 64
        commit_interval_ms = 500
        max_attempts = 3
        backoff_ms = 10
        max_backoff_ms = 1000
        max_retry_time_ms = 5000
        dead_letter_suffix = "-dead"
        max_record_bytes = 2048
        shutdown_timeout_ms = 15000
        fetch_min_bytes = 1024
        fetch_max_bytes = 8388608
        fetch_partition_max_bytes = 4194304
        fetch_max_wait_ms = 200
        isolation_level = "read_committed"
        group_instance_id = "pod-1"
    "#;
    let config = load(text, &[]).unwrap();
    assert_eq!(
        config.brokers(),
        ["kafka-1:9092", "[::1]:9093", "10.0.0.3:9094"]
    );
    assert_eq!(config.group_id(), "godev-kit-group");
    assert_eq!(config.client(), Client::Memory);
    assert_eq!(config.codec(), Codec::Tagged);
    assert_eq!(config.source(), "godev-kit");
    assert!(!config.producer_enabled());
    assert!(config.consumer_enabled());
    assert_eq!(config.unknown_tag(), UnknownTagPolicy::DeadLetter);
    assert_eq!(
        config.consumer_settings(),
        ConsumerSettings {
            offset_reset: OffsetReset::Latest,
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(2),
            rebalance_timeout: Duration::from_secs(20),
            max_poll_interval: Duration::from_secs(90),
            poll_wait: Duration::from_millis(50),
            queue_capacity: 64,
            commit_interval: Duration::from_millis(500),
            max_attempts: 3,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            max_retry_time: Duration::from_secs(5),
            dead_letter_suffix: "-dead".into(),
            max_record_bytes: 2048,
            shutdown_timeout: Duration::from_secs(15),
            group_instance_id: Some("pod-1".into()),
        }
    );
    assert_eq!(
        config.producer_tuning(),
        &ProducerTuning {
            acks: Some(Acks::One),
            compression: Some(Compression::Gzip),
            linger: Some(Duration::from_millis(7)),
            batch_size: Some(100),
            batch_bytes: Some(65536),
            max_in_flight: Some(3),
            idempotence: Some(false),
            retry_backoff: Some(Duration::from_millis(250)),
            request_timeout: Some(Duration::from_secs(5)),
            delivery_timeout: Some(Duration::from_secs(60)),
            buffer_bytes: Some(1024 * 1024),
            max_block: Some(Duration::from_secs(2)),
        }
    );
    assert_eq!(
        config.fetch_tuning(),
        &FetchTuning {
            min_bytes: Some(1024),
            max_bytes: Some(8 * 1024 * 1024),
            partition_max_bytes: Some(4 * 1024 * 1024),
            max_wait: Some(Duration::from_millis(200)),
            isolation: Isolation::ReadCommitted,
        }
    );
}

#[test]
fn every_client_name_is_accepted_from_the_file_and_the_environment() {
    let cases = [
        ("kafka", Client::Kafka),
        ("auto", Client::Auto),
        ("memory", Client::Memory),
        #[cfg(feature = "confluent")]
        ("confluent", Client::Confluent),
        #[cfg(feature = "native")]
        ("native", Client::Native),
    ];
    for (name, client) in cases {
        let from_file = load(&with(&format!("client = \"{name}\"\n")), &[]).unwrap();
        assert_eq!(from_file.client(), client);
        assert_eq!(client.to_string(), name);
        let from_env = load(MINIMAL, &[("KAFKA_CLIENT", name)]).unwrap();
        assert_eq!(from_env.client(), client);
    }
}

/// A build without the `native` backend refuses it when the config is read.
#[cfg(not(feature = "native"))]
#[test]
fn native_without_its_feature_is_refused_at_load() {
    assert_fails(
        &with("client = \"native\"\n"),
        &[],
        "kafka.client",
        "`native` is not in this build: enable the cargo feature `native` of godev-kafka",
    );
}

/// The `kafka` backend cannot write lz4 or zstd: refused at load, naming the backends that can.
#[test]
fn lz4_and_zstd_with_the_kafka_backend_are_refused_at_load() {
    for codec in ["lz4", "zstd"] {
        assert_fails(
            &format!(
                "{}[kafka.producer]\ncompression = \"{codec}\"\n",
                with("client = \"kafka\"\n")
            ),
            &[],
            "kafka.producer.compression",
            &format!(
                "the `kafka` client writes gzip and snappy batches only (the `kafka` crate has \
                 no {codec}); use `client = \"native\"` or `\"confluent\"`, or gzip or snappy"
            ),
        );
    }
    let memory = load(
        &format!(
            "{}[kafka.producer]\ncompression = \"zstd\"\n",
            with("client = \"memory\"\n")
        ),
        &[],
    );
    assert!(memory.is_ok(), "{memory:?}");
}

/// A build without the `confluent` backend refuses it when the config is read, not when the
/// first consumer starts.
#[cfg(not(feature = "confluent"))]
#[test]
fn confluent_without_its_feature_is_refused_at_load() {
    assert_fails(
        &with("client = \"confluent\"\n"),
        &[],
        "kafka.client",
        "`confluent` is not in this build: enable the cargo feature `confluent` of \
         godev-kafka, or use `kafka` for brokers before Kafka 4",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CLIENT", "confluent")],
        "KAFKA_CLIENT",
        "`confluent` is not in this build: enable the cargo feature `confluent` of \
         godev-kafka, or use `kafka` for brokers before Kafka 4",
    );
}

/// `acks = "all"` (the default) keeps the producer idempotent where the backend can be.
#[test]
fn the_producer_stays_idempotent_with_acks_all() {
    let config = load(MINIMAL, &[]).unwrap();
    assert!(config.producer_tuning().idempotent());
    let one = load(&with("[kafka.producer]\nacks = \"one\"\n"), &[]).unwrap();
    assert!(!one.producer_tuning().idempotent());
}

#[test]
fn topic_map_resolves_listed_names_and_passes_others_through() {
    let config = load(
        &with("[kafka.topics]\nuser_events = \"user-events\"\n"),
        &[],
    )
    .unwrap();
    let topics = config.topic_map();
    assert_eq!(topics.resolve("user_events"), "user-events");
    assert_eq!(topics.resolve("custom-topic"), "custom-topic");
}

#[test]
fn every_accepted_value_of_every_choice_is_read() {
    for section in SECTIONS {
        if section == &&SECURITY {
            continue; // each value needs companion keys: every_protocol_and_mechanism_is_read
        }
        for key in section.keys {
            let Kind::Choice(choices) = key.kind else {
                continue;
            };
            for choice in choices {
                if cfg!(not(feature = "confluent")) && *choice == "confluent" {
                    continue; // refused by such a build: confluent_without_its_feature_...
                }
                if cfg!(not(feature = "native")) && *choice == "native" {
                    continue; // refused by such a build: native_without_its_feature_...
                }
                if key.name == "compression" && matches!(*choice, "lz4" | "zstd") {
                    continue; // refused with the default client: lz4_and_zstd_with_the_kafka_...
                }
                if key.name == "isolation_level" && *choice == "read_committed" {
                    continue; // refused with the default client: kafka_refuses_what_it_...
                }
                let var = section.env_var(key);
                let config = load(MINIMAL, &[(&var, choice)]);
                assert!(config.is_ok(), "{var}={choice}: {config:?}");
                let table = if section == &&KAFKA {
                    format!(
                        "[kafka]\nbrokers = [\"a:1\"]\ngroup_id = \"g\"\n{} = \"{choice}\"\n",
                        key.name
                    )
                } else {
                    format!("{MINIMAL}[{}]\n{} = \"{choice}\"\n", section.path, key.name)
                };
                assert!(load(&table, &[]).is_ok(), "{table}");
            }
        }
    }
}

// --- The environment overlay -------------------------------------------------------------

#[test]
fn the_environment_overrides_the_file() {
    let text = with(
        "source = \"file\"\n[kafka.topics]\nuser_events = \"user-events\"\nother = \"other\"\n\
         [kafka.control]\nproducer_enabled = true\n[kafka.consumer]\nmax_attempts = 2\n",
    );
    let config = load(
        &text,
        &[
            ("KAFKA_BROKERS", " a:9092 , b:9092 "),
            ("KAFKA_GROUP_ID", "from-env"),
            ("KAFKA_CLIENT", "memory"),
            ("KAFKA_CODEC", "tagged"),
            ("KAFKA_SOURCE", "env"),
            ("KAFKA_TOPICS_USER_EVENTS", "users-v2"),
            ("KAFKA_CONTROL_PRODUCER_ENABLED", "No"),
            ("KAFKA_CONTROL_CONSUMER_ENABLED", "0"),
            ("KAFKA_CONSUMER_MAX_ATTEMPTS", "9"),
            ("KAFKA_CONSUMER_UNKNOWN_TAG", "fail"),
            ("KAFKA_PRODUCER_LINGER_MS", "20"),
            // No entry for this logical name in the file: ignored.
            ("KAFKA_TOPICS_NEW_TOPIC", "new"),
        ],
    )
    .unwrap();
    assert_eq!(config.brokers(), ["a:9092", "b:9092"]);
    assert_eq!(config.group_id(), "from-env");
    assert_eq!(config.client(), Client::Memory);
    assert_eq!(config.codec(), Codec::Tagged);
    assert_eq!(config.source(), "env");
    assert_eq!(
        config.topics().iter().collect::<Vec<_>>(),
        [
            (&"other".to_owned(), &"other".to_owned()),
            (&"user_events".to_owned(), &"users-v2".to_owned())
        ]
    );
    assert!(!config.producer_enabled());
    assert!(!config.consumer_enabled());
    assert_eq!(config.consumer_settings().max_attempts, 9);
    assert_eq!(config.unknown_tag(), UnknownTagPolicy::Fail);
    assert_eq!(
        config.producer_tuning().linger,
        Some(Duration::from_millis(20))
    );
}

#[test]
fn the_environment_can_supply_required_keys() {
    let config = load("", &[("KAFKA_BROKERS", "k:9092"), ("KAFKA_GROUP_ID", "g")]).unwrap();
    assert_eq!(config.brokers(), ["k:9092"]);
    assert_eq!(config.group_id(), "g");
}

#[test]
fn every_key_has_a_distinct_variable_and_is_documented() {
    let docs = include_str!("mod.rs");
    let example = include_str!("../../../config/config.toml");
    let mut vars = std::collections::HashSet::new();
    for section in SECTIONS {
        for key in section.keys {
            let var = section.env_var(key);
            assert!(docs.contains(&format!("`{var}`")), "module docs lack {var}");
            assert!(
                docs.contains(&format!("| `{}` |", key.name)),
                "module docs lack {}",
                key.name
            );
            assert!(example.contains(&var), "config/config.toml lacks {var}");
            assert!(vars.insert(var));
        }
    }
    assert_eq!(
        schema::topic_env_var("user_events"),
        "KAFKA_TOPICS_USER_EVENTS"
    );
    assert_eq!(
        schema::topic_env_var("orders.v2-eu"),
        "KAFKA_TOPICS_ORDERS_V2_EU"
    );
}

// --- The example file and the configs for code ----------------------------------------------

#[test]
fn the_repository_example_config_loads() {
    let text = include_str!("../../../config/config.toml");
    let config = Config::from_toml(text, "config/config.toml", |_| None).unwrap();
    assert_eq!(config.brokers(), ["127.0.0.1:9092"]);
    assert_eq!(config.group_id(), "godev-kit-group");
    assert_eq!(config.client(), Client::Auto);
    assert_eq!(config.source(), "godev-kit");
    assert_eq!(config.topic_map().resolve("user_events"), "user-events");
    assert_eq!(
        config.topic_map().resolve("translation_events"),
        "translation-events"
    );
    assert!(config.producer_enabled() && config.consumer_enabled());
    assert_eq!(config.consumer_settings(), ConsumerSettings::default());
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("godev-kafka-config-{}.toml", std::process::id()));
    std::fs::write(&path, MINIMAL).unwrap();
    let config = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.unwrap().group_id(), "g");
}

#[test]
fn configs_for_code_are_valid() {
    let memory = Config::memory();
    assert_eq!(memory.client(), Client::Memory);
    assert_eq!(memory.group_id(), "godev-kafka");
    assert_eq!(memory.brokers(), ["127.0.0.1:9092"]);
    let kafka = Config::default_for(["b:9092"], "billing").unwrap();
    assert_eq!(kafka.client(), Client::Kafka);
    assert_eq!(
        kafka,
        load(
            "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"billing\"",
            &[]
        )
        .unwrap()
    );
    let empty: [&str; 0] = [];
    assert_eq!(
        Config::default_for(empty, "billing")
            .unwrap_err()
            .to_string(),
        "config key `kafka.brokers`: `kafka.brokers` is empty; list at least one broker as host:port"
    );
    assert_eq!(
        Config::default_for(["localhost"], "billing")
            .unwrap_err()
            .to_string(),
        "config key `kafka.brokers`: `localhost` is not host:port"
    );
}

/// Issue #15: `Config::default_for(brokers)` put every consumer in group `godev-kafka`, so
/// two services built that way split one group's partitions, each missing the other's
/// records. The group is now the caller's, and an empty one is refused as in a file.
#[test]
fn a_consumer_needs_an_explicit_group_id() {
    let billing = Config::default_for(["b:9092"], "billing").unwrap();
    let mailer = Config::default_for(["b:9092"], "mailer").unwrap();
    assert_eq!(
        (billing.group_id(), mailer.group_id()),
        ("billing", "mailer")
    );
    for blank in ["", "  "] {
        let error = Config::default_for(["b:9092"], blank).unwrap_err();
        assert!(
            matches!(&error, Error::Config { key, .. } if key == "kafka.group_id"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "config key `kafka.group_id`: must not be empty; name the service's consumer group"
        );
    }
}

// --- Errors, each message whole ----------------------------------------------------------------

#[test]
fn a_missing_file_names_its_path() {
    let path = "/nonexistent/godev-kafka/config.toml";
    let error = Config::load(path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "config key `{path}`: cannot read config file `{path}`: No such file or directory (os error 2); create it or pass another path"
        )
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    assert_fails(
        "[kafka]\nbrokers = [\"a:1\"]\ngroup_id = g\n",
        &[],
        "config.toml",
        "`config.toml` line 3, column 12: string values must be quoted, expected literal string",
    );
    assert_fails(
        "[kafka\n",
        &[],
        "config.toml",
        "`config.toml` line 1, column 7: unclosed table, expected `]`",
    );
    assert_fails(
        "[kafka]\ngroup_id = \"a\"\ngroup_id = \"b\"\n",
        &[],
        "config.toml",
        "`config.toml` line 3, column 1: duplicate key",
    );
}

#[test]
fn unknown_keys_suggest_the_closest_known_key() {
    assert_fails(
        "[kafka]\nbrokers = [\"a:1\"]\ngrup_id = \"g\"\n",
        &[],
        "kafka.grup_id",
        "unknown key; did you mean `group_id`?",
    );
    assert_fails(
        &with("[kafka.controll]\nproducer_enabled = true\n"),
        &[],
        "kafka.controll",
        "unknown key; did you mean `control`?",
    );
    assert_fails(
        &with("[kafka.consumer]\nmax_attempt = 3\n"),
        &[],
        "kafka.consumer.max_attempt",
        "unknown key; did you mean `max_attempts`?",
    );
    assert_fails(
        &with("[kafka.control]\nProducer_Enabled = true\n"),
        &[],
        "kafka.control.Producer_Enabled",
        "unknown key; did you mean `producer_enabled`?",
    );
    assert_fails(
        "[kafak]\n",
        &[],
        "kafak",
        "unknown key; did you mean `kafka`?",
    );
}

#[test]
fn unknown_keys_without_a_close_match_list_the_known_ones() {
    assert_fails(
        &with("verbosity = 3\n"),
        &[],
        "kafka.verbosity",
        "unknown key; expected one of `brokers`, `group_id`, `client`, `codec`, `source`, `topics`, `control`, `producer`, `consumer`, `security`",
    );
    assert_fails(
        &with("[kafka.control]\nenabled = true\n"),
        &[],
        "kafka.control.enabled",
        "unknown key; expected one of `producer_enabled`, `consumer_enabled`",
    );
    assert_fails(
        "[database]\n",
        &[],
        "database",
        "unknown key; expected one of `kafka`",
    );
}

#[test]
fn keys_in_the_wrong_table_name_the_right_one() {
    assert_fails(
        &with("acks = \"all\"\n"),
        &[],
        "kafka.acks",
        "unknown key; `acks` belongs in [kafka.producer]",
    );
    assert_fails(
        &with("[kafka.consumer]\ngroup_id = \"g\"\n"),
        &[],
        "kafka.consumer.group_id",
        "unknown key; `group_id` belongs in [kafka]",
    );
}

#[test]
fn values_of_the_wrong_type() {
    assert_fails(
        &with("[kafka.control]\nproducer_enabled = \"yes\"\n"),
        &[],
        "kafka.control.producer_enabled",
        "expected a boolean, found a string",
    );
    assert_fails(
        "[kafka]\nbrokers = \"a:9092\"\n",
        &[],
        "kafka.brokers",
        "expected an array of strings, found a string",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"a:9092\", 9092]\n",
        &[],
        "kafka.brokers",
        "expected an array of strings, found an integer at index 1",
    );
    assert_fails(
        &with("[kafka.consumer]\nmax_attempts = 1.5\n"),
        &[],
        "kafka.consumer.max_attempts",
        "expected an integer, found a float",
    );
    assert_fails(
        &with("[kafka.consumer]\noffset_reset = 1\n"),
        &[],
        "kafka.consumer.offset_reset",
        "expected a string, found an integer",
    );
    assert_fails(
        &with("[kafka.topics]\nuser_events = [\"user-events\"]\n"),
        &[],
        "kafka.topics.user_events",
        "expected a string, found an array",
    );
    assert_fails(
        "kafka = 1\n",
        &[],
        "kafka",
        "expected a table, found an integer",
    );
    assert_fails(
        &with("control = true\n"),
        &[],
        "kafka.control",
        "expected a table, found a boolean",
    );
}

#[test]
fn required_keys() {
    assert_fails(
        "[kafka]\ngroup_id = \"g\"\n",
        &[],
        "kafka.brokers",
        "missing; add `brokers = [\"host:port\"]` to [kafka] or set KAFKA_BROKERS",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"a:1\"]\n",
        &[],
        "kafka.group_id",
        "missing; add `group_id = \"...\"` to [kafka] or set KAFKA_GROUP_ID",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"a:1\"]\ngroup_id = \" \"\n",
        &[],
        "kafka.group_id",
        "must not be empty",
    );
    assert_fails(
        &with("source = \"\"\n"),
        &[],
        "kafka.source",
        "must not be empty",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_GROUP_ID", "")],
        "KAFKA_GROUP_ID",
        "must not be empty",
    );
}

#[test]
fn brokers() {
    assert_fails(
        "[kafka]\nbrokers = []\ngroup_id = \"g\"\n",
        &[],
        "kafka.brokers",
        "`kafka.brokers` is empty; list at least one broker as host:port",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"localhost\"]\ngroup_id = \"g\"\n",
        &[],
        "kafka.brokers",
        "`localhost` is not host:port",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"a:9092\", \"b:99999\"]\ngroup_id = \"g\"\n",
        &[],
        "kafka.brokers",
        "`b:99999`: port must be a number from 1 to 65535, found `99999`",
    );
    assert_fails(
        "[kafka]\nbrokers = [\"::1:9092\"]\ngroup_id = \"g\"\n",
        &[],
        "kafka.brokers",
        "`::1:9092` is not host:port; write an IPv6 address in brackets, as in `[::1]:9092`",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_BROKERS", " , ")],
        "KAFKA_BROKERS",
        "`KAFKA_BROKERS` is empty; list at least one broker as host:port",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_BROKERS", "a:9092,b")],
        "KAFKA_BROKERS",
        "`b` is not host:port",
    );
}

#[test]
fn values_outside_the_accepted_ones() {
    assert_fails(
        &with("client = \"rdkafka\"\n"),
        &[],
        "kafka.client",
        "expected one of `kafka`, `confluent`, `native`, `auto`, `memory`, found `rdkafka`",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CODEC", "json")],
        "KAFKA_CODEC",
        "expected one of `cloudevents`, `tagged`, found `json`",
    );
    assert_fails(
        &with("[kafka.producer]\nacks = \"-1\"\n"),
        &[],
        "kafka.producer.acks",
        "expected one of `all`, `one`, `none`, found `-1`",
    );
    assert_fails(
        &with("[kafka.consumer]\nunknown_tag = \"ignore\"\n"),
        &[],
        "kafka.consumer.unknown_tag",
        "expected one of `skip`, `dead_letter`, `fail`, found `ignore`",
    );
}

#[test]
fn bad_booleans_in_the_environment_name_the_variable() {
    assert_fails(
        MINIMAL,
        &[("KAFKA_CONTROL_PRODUCER_ENABLED", "maybe")],
        "KAFKA_CONTROL_PRODUCER_ENABLED",
        "expected true or false (or 1/0, yes/no), found `maybe`",
    );
}

#[test]
fn numbers_out_of_range() {
    assert_fails(
        &with("[kafka.consumer]\nmax_attempts = 0\n"),
        &[],
        "kafka.consumer.max_attempts",
        "must be at least 1, found 0",
    );
    assert_fails(
        &with("[kafka.consumer]\nqueue_capacity = 0\n"),
        &[],
        "kafka.consumer.queue_capacity",
        "must be at least 1, found 0",
    );
    assert_fails(
        &with("[kafka.producer]\nlinger_ms = -5\n"),
        &[],
        "kafka.producer.linger_ms",
        "must not be negative, found -5",
    );
    assert_fails(
        &with("[kafka.consumer]\nsession_timeout_ms = 3000000000\n"),
        &[],
        "kafka.consumer.session_timeout_ms",
        "must be at most 2147483647, found 3000000000",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CONSUMER_MAX_ATTEMPTS", "0")],
        "KAFKA_CONSUMER_MAX_ATTEMPTS",
        "must be at least 1, found 0",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_PRODUCER_RETRIES", "five")],
        "KAFKA_PRODUCER_RETRIES",
        "expected an integer, found `five`",
    );
}

#[test]
fn the_heartbeat_must_be_shorter_than_the_session() {
    assert_fails(
        &with("[kafka.consumer]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 6000\n"),
        &[],
        "kafka.consumer.heartbeat_interval_ms",
        "must be less than `kafka.consumer.session_timeout_ms` (6000), found 6000; a third of it is usual",
    );
    assert_fails(
        &with("[kafka.consumer]\nheartbeat_interval_ms = 6000\n"),
        &[("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "5000")],
        "kafka.consumer.heartbeat_interval_ms",
        "must be less than `KAFKA_CONSUMER_SESSION_TIMEOUT_MS` (5000), found 6000; a third of it is usual",
    );
    // Only the session is set: it is the one to blame.
    assert_fails(
        &with("[kafka.consumer]\nsession_timeout_ms = 2000\n"),
        &[],
        "kafka.consumer.session_timeout_ms",
        "must be greater than `kafka.consumer.heartbeat_interval_ms` (3000), found 2000",
    );
}

/// Issue #15: a shutdown timeout as long as the rebalance timeout (both 30 s by default)
/// let a draining member outlive the rebalance, so the broker evicted it and its handled
/// records were read again. The drain must end 5 s before the rebalance deadline.
#[test]
fn a_shutdown_timeout_not_below_the_rebalance_timeout_is_refused() {
    assert_fails(
        &with("[kafka.consumer]\nshutdown_timeout_ms = 30000\n"),
        &[],
        "kafka.consumer.shutdown_timeout_ms",
        "must be at most `kafka.consumer.rebalance_timeout_ms` minus 5000 (30000 - 5000 = 25000), \
         found 30000: the drain must end before the rebalance deadline evicts the member; lower \
         it, or raise `kafka.consumer.rebalance_timeout_ms` to at least 35000",
    );
    // Below the rebalance timeout, but within the margin.
    assert_fails(
        &with("[kafka.consumer]\nrebalance_timeout_ms = 20000\nshutdown_timeout_ms = 15001\n"),
        &[],
        "kafka.consumer.shutdown_timeout_ms",
        "must be at most `kafka.consumer.rebalance_timeout_ms` minus 5000 (20000 - 5000 = 15000), \
         found 15001: the drain must end before the rebalance deadline evicts the member; lower \
         it, or raise `kafka.consumer.rebalance_timeout_ms` to at least 20001",
    );
    assert_fails(
        MINIMAL,
        &[
            ("KAFKA_CONSUMER_SHUTDOWN_TIMEOUT_MS", "40000"),
            ("KAFKA_CONSUMER_REBALANCE_TIMEOUT_MS", "40000"),
        ],
        "KAFKA_CONSUMER_SHUTDOWN_TIMEOUT_MS",
        "must be at most `KAFKA_CONSUMER_REBALANCE_TIMEOUT_MS` minus 5000 (40000 - 5000 = 35000), \
         found 40000: the drain must end before the rebalance deadline evicts the member; lower \
         it, or raise `KAFKA_CONSUMER_REBALANCE_TIMEOUT_MS` to at least 45000",
    );
    // Only the rebalance timeout is set (below the default shutdown + 5 s): it is the one to
    // blame, and so is one too short for any drain.
    assert_fails(
        &with("[kafka.consumer]\nrebalance_timeout_ms = 20000\n"),
        &[],
        "kafka.consumer.rebalance_timeout_ms",
        "must be at least `kafka.consumer.shutdown_timeout_ms` plus 5000 (25000 + 5000 = 30000), \
         found 20000: the drain must end before the rebalance deadline evicts the member; raise \
         it, or lower `kafka.consumer.shutdown_timeout_ms`",
    );
    assert_fails(
        &with("[kafka.consumer]\nrebalance_timeout_ms = 3000\nshutdown_timeout_ms = 0\n"),
        &[],
        "kafka.consumer.rebalance_timeout_ms",
        "must be at least `kafka.consumer.shutdown_timeout_ms` plus 5000 (0 + 5000 = 5000), \
         found 3000: the drain must end before the rebalance deadline evicts the member; raise \
         it, or lower `kafka.consumer.shutdown_timeout_ms`",
    );
    // At the margin exactly, and the defaults, are accepted.
    let fits = load(
        &with("[kafka.consumer]\nrebalance_timeout_ms = 20000\nshutdown_timeout_ms = 15000\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        fits.consumer_settings().shutdown_timeout,
        Duration::from_secs(15)
    );
    let defaults = load(MINIMAL, &[]).unwrap().consumer_settings();
    assert_eq!(
        (defaults.shutdown_timeout, defaults.rebalance_timeout),
        (Duration::from_secs(25), Duration::from_secs(30))
    );
}

#[test]
fn topic_names_must_be_valid() {
    assert_fails(
        &with("[kafka.topics]\nuser_events = \"user events\"\n"),
        &[],
        "kafka.topics.user_events",
        "`user events` is not a valid Kafka topic name; use 1 to 249 letters, digits, `.`, `_` or `-`",
    );
    assert_fails(
        &with("[kafka.topics]\nuser_events = \"\"\n"),
        &[],
        "kafka.topics.user_events",
        "must not be empty",
    );
    assert_fails(
        &with("[kafka.topics]\nuser_events = \"user-events\"\n"),
        &[("KAFKA_TOPICS_USER_EVENTS", "users/v2")],
        "KAFKA_TOPICS_USER_EVENTS",
        "`users/v2` is not a valid Kafka topic name; use 1 to 249 letters, digits, `.`, `_` or `-`",
    );
    assert_fails(
        &with("[kafka.consumer]\ndead_letter_suffix = \"\"\n"),
        &[],
        "kafka.consumer.dead_letter_suffix",
        "must not be empty",
    );
    assert_fails(
        &with("[kafka.consumer]\ndead_letter_suffix = \" dlq\"\n"),
        &[],
        "kafka.consumer.dead_letter_suffix",
        "` dlq` may only contain letters, digits, `.`, `_` or `-` (it ends topic names)",
    );
}

// --- Producer and fetch tuning, and what each backend refuses ----------------------------------

/// `MINIMAL` with `client`, then `[section]` holding `body`.
fn for_client(client: &str, section: &str, body: &str) -> String {
    with(&format!(
        "client = \"{client}\"\n[kafka.{section}]\n{body}\n"
    ))
}

#[test]
fn the_new_producer_keys_are_read_from_the_file_and_the_environment() {
    let file = load(
        &for_client(
            "memory",
            "producer",
            "batch_bytes = 65536\nmax_in_flight = 2\nidempotence = true\n\
             delivery_timeout_ms = 90000\nbuffer_bytes = 4096\nmax_block_ms = 0\n",
        ),
        &[],
    )
    .unwrap();
    let p = file.producer_tuning();
    assert_eq!(p.batch_bytes, Some(65536));
    assert_eq!(p.max_in_flight, Some(2));
    assert_eq!(p.idempotence, Some(true));
    assert_eq!(p.delivery_timeout, Some(Duration::from_secs(90)));
    assert_eq!(p.buffer_bytes, Some(4096));
    assert_eq!(p.max_block, Some(Duration::ZERO));

    let env = load(
        &for_client(
            "memory",
            "producer",
            "batch_bytes = 1\nidempotence = true\n",
        ),
        &[
            ("KAFKA_PRODUCER_BATCH_BYTES", "32768"),
            ("KAFKA_PRODUCER_MAX_IN_FLIGHT", "4"),
            ("KAFKA_PRODUCER_IDEMPOTENCE", "no"),
            ("KAFKA_PRODUCER_DELIVERY_TIMEOUT_MS", " 45000 "),
            ("KAFKA_PRODUCER_BUFFER_BYTES", "8192"),
            ("KAFKA_PRODUCER_MAX_BLOCK_MS", "250"),
        ],
    )
    .unwrap();
    let p = env.producer_tuning();
    assert_eq!(p.batch_bytes, Some(32768));
    assert_eq!(p.max_in_flight, Some(4));
    assert_eq!(p.idempotence, Some(false));
    assert!(!p.idempotent());
    assert_eq!(p.delivery_timeout, Some(Duration::from_secs(45)));
    assert_eq!(p.buffer_bytes, Some(8192));
    assert_eq!(p.max_block, Some(Duration::from_millis(250)));
}

#[test]
fn the_new_consumer_keys_are_read_from_the_file_and_the_environment() {
    let file = load(
        &for_client(
            "memory",
            "consumer",
            "fetch_min_bytes = 10\nfetch_max_bytes = 20\nfetch_partition_max_bytes = 30\n\
             fetch_max_wait_ms = 40\nisolation_level = \"read_committed\"\n\
             group_instance_id = \"billing-0\"\n",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        file.fetch_tuning(),
        &FetchTuning {
            min_bytes: Some(10),
            max_bytes: Some(20),
            partition_max_bytes: Some(30),
            max_wait: Some(Duration::from_millis(40)),
            isolation: Isolation::ReadCommitted,
        }
    );
    assert_eq!(
        file.consumer_settings().group_instance_id.as_deref(),
        Some("billing-0")
    );

    let env = load(
        &for_client(
            "memory",
            "consumer",
            "isolation_level = \"read_committed\"\n",
        ),
        &[
            ("KAFKA_CONSUMER_FETCH_MIN_BYTES", "11"),
            ("KAFKA_CONSUMER_FETCH_MAX_BYTES", "21"),
            ("KAFKA_CONSUMER_FETCH_PARTITION_MAX_BYTES", "31"),
            ("KAFKA_CONSUMER_FETCH_MAX_WAIT_MS", "41"),
            ("KAFKA_CONSUMER_ISOLATION_LEVEL", "read_uncommitted"),
            ("KAFKA_CONSUMER_GROUP_INSTANCE_ID", "billing-1"),
        ],
    )
    .unwrap();
    assert_eq!(
        env.fetch_tuning(),
        &FetchTuning {
            min_bytes: Some(11),
            max_bytes: Some(21),
            partition_max_bytes: Some(31),
            max_wait: Some(Duration::from_millis(41)),
            isolation: Isolation::ReadUncommitted,
        }
    );
    assert_eq!(
        env.consumer_settings().group_instance_id.as_deref(),
        Some("billing-1")
    );
}

#[test]
fn the_new_keys_refuse_bad_values() {
    let cases = [
        ("producer", "batch_bytes = 0", "must be at least 1, found 0"),
        (
            "producer",
            "batch_bytes = 2147483648",
            "must be at most 2147483647, found 2147483648",
        ),
        (
            "producer",
            "max_in_flight = 0",
            "must be at least 1, found 0",
        ),
        (
            "producer",
            "idempotence = \"yes\"",
            "expected a boolean, found a string",
        ),
        (
            "producer",
            "delivery_timeout_ms = 0",
            "must be at least 1, found 0",
        ),
        (
            "producer",
            "buffer_bytes = 0",
            "must be at least 1, found 0",
        ),
        (
            "producer",
            "max_block_ms = -1",
            "must not be negative, found -1",
        ),
        (
            "consumer",
            "fetch_min_bytes = 0",
            "must be at least 1, found 0",
        ),
        (
            "consumer",
            "fetch_max_bytes = 2147483648",
            "must be at most 2147483647, found 2147483648",
        ),
        (
            "consumer",
            "fetch_partition_max_bytes = 0",
            "must be at least 1, found 0",
        ),
        (
            "consumer",
            "fetch_max_wait_ms = 0",
            "must be at least 1, found 0",
        ),
        (
            "consumer",
            "isolation_level = \"committed\"",
            "expected one of `read_uncommitted`, `read_committed`, found `committed`",
        ),
        ("consumer", "group_instance_id = \"\"", "must not be empty"),
        (
            "consumer",
            "group_instance_id = 7",
            "expected a string, found an integer",
        ),
    ];
    for (section, line, message) in cases {
        let key = line.split(' ').next().unwrap();
        assert_fails(
            &for_client("memory", section, line),
            &[],
            &format!("kafka.{section}.{key}"),
            message,
        );
    }
    assert_fails(
        MINIMAL,
        &[("KAFKA_PRODUCER_IDEMPOTENCE", "maybe")],
        "KAFKA_PRODUCER_IDEMPOTENCE",
        "expected true or false (or 1/0, yes/no), found `maybe`",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CONSUMER_ISOLATION_LEVEL", "READ_COMMITTED")],
        "KAFKA_CONSUMER_ISOLATION_LEVEL",
        "expected one of `read_uncommitted`, `read_committed`, found `READ_COMMITTED`; did you \
         mean `read_committed`?",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CONSUMER_FETCH_MAX_WAIT_MS", "soon")],
        "KAFKA_CONSUMER_FETCH_MAX_WAIT_MS",
        "expected an integer, found `soon`",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_CONSUMER_GROUP_INSTANCE_ID", " ")],
        "KAFKA_CONSUMER_GROUP_INSTANCE_ID",
        "must not be empty",
    );
}

/// Producer keys that contradict each other are refused on every backend, naming both.
#[test]
fn contradicting_producer_keys_name_both() {
    assert_fails(
        &for_client("memory", "producer", "idempotence = true\nacks = \"one\""),
        &[],
        "kafka.producer.idempotence",
        "an idempotent producer needs `kafka.producer.acks` = \"all\", found \"one\"; set it to \
         \"all\", or `kafka.producer.idempotence` to false",
    );
    assert_fails(
        &for_client("memory", "producer", "acks = \"none\""),
        &[("KAFKA_PRODUCER_IDEMPOTENCE", "true")],
        "KAFKA_PRODUCER_IDEMPOTENCE",
        "an idempotent producer needs `kafka.producer.acks` = \"all\", found \"none\"; set it to \
         \"all\", or `KAFKA_PRODUCER_IDEMPOTENCE` to false",
    );
    assert_fails(
        &for_client(
            "memory",
            "producer",
            "idempotence = true\nmax_in_flight = 6",
        ),
        &[],
        "kafka.producer.max_in_flight",
        "must be at most 5 with `kafka.producer.idempotence` = true (the broker deduplicates a \
         producer's last 5 batches), found 6; lower it, or set `kafka.producer.idempotence` to \
         false",
    );
    assert_fails(
        &for_client("memory", "producer", "delivery_timeout_ms = 30000"),
        &[],
        "kafka.producer.delivery_timeout_ms",
        "must be at least `kafka.producer.linger_ms` + `kafka.producer.request_timeout_ms` \
         (5 + 30000 = 30005), found 30000",
    );
    assert_fails(
        &for_client(
            "memory",
            "producer",
            "delivery_timeout_ms = 1000\nlinger_ms = 10",
        ),
        &[("KAFKA_PRODUCER_REQUEST_TIMEOUT_MS", "1000")],
        "kafka.producer.delivery_timeout_ms",
        "must be at least `kafka.producer.linger_ms` + `KAFKA_PRODUCER_REQUEST_TIMEOUT_MS` \
         (10 + 1000 = 1010), found 1000",
    );
    // Without `idempotence`, more than 5 in flight turns the default idempotence off.
    let many = load(&for_client("memory", "producer", "max_in_flight = 6"), &[]).unwrap();
    assert!(!many.producer_tuning().idempotent());
    for ok in [
        "idempotence = false\nacks = \"one\"\nmax_in_flight = 10",
        "idempotence = true\nacks = \"all\"\nmax_in_flight = 5",
        "delivery_timeout_ms = 30005",
    ] {
        let config = load(&for_client("memory", "producer", ok), &[]);
        assert!(config.is_ok(), "{ok}: {config:?}");
    }
}

/// What the `kafka` client cannot honour, each key with its message whole.
const KAFKA_REFUSES: &[(&str, &str, &str)] = &[
    (
        "producer",
        "batch_bytes = 1024",
        "limits a batch by records, not bytes, and cannot honour this key; use `batch_size` \
         (records), or `client = \"native\"`",
    ),
    (
        "producer",
        "max_in_flight = 1",
        "sends one request at a time and cannot honour this key; use `client = \"native\"` or \
         remove it",
    ),
    (
        "producer",
        "idempotence = true",
        "has no idempotent producer; use `client = \"native\"` or `\"confluent\"`, or \
         `idempotence = false`",
    ),
    (
        "consumer",
        "fetch_min_bytes = 1024",
        "asks the broker to answer a fetch at its first byte and cannot honour this key; use \
         `client = \"native\"` or remove it",
    ),
    (
        "consumer",
        "fetch_max_bytes = 1024",
        "speaks Fetch v0, which has no response limit, and cannot honour this key; use \
         `fetch_partition_max_bytes`, or `client = \"native\"`",
    ),
    (
        "consumer",
        "fetch_max_wait_ms = 100",
        "waits for records as long as the poll does and cannot honour this key; use \
         `poll_wait_ms`, or `client = \"native\"`",
    ),
    (
        "consumer",
        "isolation_level = \"read_committed\"",
        "speaks Fetch v0, which reads every record, committed or not; use `client = \
         \"native\"` or `\"confluent\"`, or `read_uncommitted`",
    ),
];

#[test]
fn kafka_refuses_what_it_cannot_honour() {
    for &(section, line, reason) in KAFKA_REFUSES {
        let key = line.split(' ').next().unwrap();
        let message = format!("the `kafka` client {reason}");
        assert_fails(
            &for_client("kafka", section, line),
            &[],
            &format!("kafka.{section}.{key}"),
            &message,
        );
        // The default client is `kafka`; a variable is named as the variable.
        let var = format!("KAFKA_{}_{}", section.to_uppercase(), key.to_uppercase());
        let value = line.split(" = ").nth(1).unwrap().trim_matches('"');
        assert_fails(MINIMAL, &[(&var, value)], &var, &message);
        // The memory backend ignores these keys.
        assert!(load(&for_client("memory", section, line), &[]).is_ok());
    }
    for ok in [
        (
            "producer",
            "idempotence = false\nbatch_size = 10\nretry_backoff_ms = 5\n\
             delivery_timeout_ms = 60000\nbuffer_bytes = 1024\nmax_block_ms = 0",
        ),
        (
            "consumer",
            "isolation_level = \"read_uncommitted\"\nfetch_partition_max_bytes = 4096\n\
             group_instance_id = \"a\"",
        ),
    ] {
        let config = load(&for_client("kafka", ok.0, ok.1), &[]);
        assert!(config.is_ok(), "{ok:?}: {config:?}");
    }
}

/// The `kafka` backend's producer retries until its delivery timeout and bounds its queue
/// (issue #15): it takes those keys, from the file and from the environment.
#[test]
fn kafka_takes_the_delivery_timeout_and_the_buffer_keys() {
    let file = load(
        &for_client(
            "kafka",
            "producer",
            "delivery_timeout_ms = 60000\nbuffer_bytes = 4096\nmax_block_ms = 250",
        ),
        &[],
    )
    .unwrap();
    let env = load(
        MINIMAL,
        &[
            ("KAFKA_PRODUCER_DELIVERY_TIMEOUT_MS", "60000"),
            ("KAFKA_PRODUCER_BUFFER_BYTES", "4096"),
            ("KAFKA_PRODUCER_MAX_BLOCK_MS", "250"),
        ],
    )
    .unwrap();
    for config in [file, env] {
        assert_eq!(config.client(), Client::Kafka);
        let p = config.producer_tuning();
        assert_eq!(p.delivery_timeout, Some(Duration::from_secs(60)));
        assert_eq!(p.buffer_bytes, Some(4096));
        assert_eq!(p.max_block, Some(Duration::from_millis(250)));
    }
}

/// `retries` no longer does anything for any backend, so it is refused for each, `memory`
/// included, naming the key (or the variable) and the fix.
#[test]
fn retries_is_refused_whatever_the_backend() {
    let mut clients = vec!["kafka", "memory", "auto"];
    if cfg!(feature = "native") {
        clients.push("native");
    }
    if cfg!(feature = "confluent") {
        clients.push("confluent");
    }
    let message = |name: &str| {
        format!(
            "no longer used: the `kafka` backend, like `native` and `confluent`, retries a send \
             until `delivery_timeout_ms`, not a number of times; remove `{name}`"
        )
    };
    for client in clients {
        let key = "kafka.producer.retries";
        for value in ["0", "5"] {
            assert_fails(
                &for_client(client, "producer", &format!("retries = {value}")),
                &[],
                key,
                &message(key),
            );
        }
        let var = "KAFKA_PRODUCER_RETRIES";
        assert_fails(
            &for_client(client, "producer", ""),
            &[(var, "3")],
            var,
            &message(var),
        );
    }
    // It is still a known key: a wrong value is told as such, and a typo finds it.
    assert_fails(
        &for_client("memory", "producer", "retries = -1"),
        &[],
        "kafka.producer.retries",
        "must not be negative, found -1",
    );
    assert_fails(
        &for_client("memory", "producer", "retrie = 1"),
        &[],
        "kafka.producer.retrie",
        "unknown key; did you mean `retries`?",
    );
}

/// What the `native` and `confluent` clients cannot honour (each with the same words); the
/// `kafka` client honours it.
#[cfg(any(feature = "native", feature = "confluent"))]
fn batch_size_is_refused_by(client: &str) {
    assert_fails(
        &for_client(client, "producer", "batch_size = 100"),
        &[],
        "kafka.producer.batch_size",
        &format!(
            "the `{client}` client limits a batch by bytes, not records, and cannot honour this \
             key; use `batch_bytes`"
        ),
    );
    let every_other = for_client(
        client,
        "producer",
        "acks = \"all\"\ncompression = \"zstd\"\nlinger_ms = 1\nbatch_bytes = 1024\n\
         max_in_flight = 5\nidempotence = true\nretry_backoff_ms = 10\nrequest_timeout_ms = 1000\n\
         delivery_timeout_ms = 5000\nbuffer_bytes = 1024\nmax_block_ms = 10\n\
         [kafka.consumer]\nfetch_min_bytes = 1\nfetch_max_bytes = 1024\n\
         fetch_partition_max_bytes = 1024\nfetch_max_wait_ms = 10\n\
         isolation_level = \"read_committed\"\ngroup_instance_id = \"a\"",
    );
    let config = load(&every_other, &[]);
    assert!(config.is_ok(), "{config:?}");
}

#[cfg(feature = "native")]
#[test]
fn native_refuses_batch_size() {
    batch_size_is_refused_by("native");
}

#[cfg(feature = "confluent")]
#[test]
fn confluent_refuses_batch_size() {
    batch_size_is_refused_by("confluent");
}

/// In a build with `native`, `auto` means `native`: checked as such at load, saying so.
#[cfg(feature = "native")]
#[test]
fn auto_is_checked_as_native_in_a_build_with_it() {
    assert_fails(
        &for_client("auto", "producer", "batch_size = 3"),
        &[],
        "kafka.producer.batch_size",
        "`client = \"auto\"` picked `native`: the `native` client limits a batch by bytes, not \
         records, and cannot honour this key; use `batch_bytes`",
    );
}

/// Without `native`, `auto` cannot know its backend at load: the manager checks at connect.
#[cfg(not(feature = "native"))]
#[test]
fn auto_without_native_is_checked_once_it_picked() {
    let config = load(
        &for_client("auto", "consumer", "isolation_level = \"read_committed\""),
        &[],
    )
    .unwrap();
    assert!(config.check_client(Client::Auto).is_ok());
    assert_eq!(
        config.check_client(Client::Kafka).unwrap_err().to_string(),
        "config key `kafka.consumer.isolation_level`: `client = \"auto\"` picked `kafka`: the \
         `kafka` client speaks Fetch v0, which reads every record, committed or not; use \
         `client = \"native\"` or `\"confluent\"`, or `read_uncommitted`"
    );
}

#[test]
fn check_client_passes_memory_and_auto_and_keys_left_at_their_defaults() {
    let all = for_client(
        "memory",
        "producer",
        "batch_size = 1\nbatch_bytes = 1\nmax_in_flight = 1\nidempotence = true",
    );
    let config = load(&all, &[]).unwrap();
    assert!(config.check_client(Client::Memory).is_ok());
    assert!(config.check_client(Client::Auto).is_ok());
    assert!(config.check_client(Client::Kafka).is_err());
    assert!(config.check_client(Client::Native).is_err());
    assert!(config.check_client(Client::Confluent).is_err());
    let defaults = load(MINIMAL, &[]).unwrap();
    for client in [Client::Kafka, Client::Native, Client::Confluent] {
        assert!(defaults.check_client(client).is_ok(), "{client}");
    }
}

#[test]
fn the_new_keys_have_did_you_mean() {
    let cases = [
        ("producer", "batch_byte", "batch_bytes"),
        ("producer", "max_inflight", "max_in_flight"),
        ("producer", "idempotent", "idempotence"),
        ("producer", "delivery_timeout", "delivery_timeout_ms"),
        ("producer", "buffer_byte", "buffer_bytes"),
        ("producer", "max_block", "max_block_ms"),
        ("consumer", "fetch_min_byte", "fetch_min_bytes"),
        ("consumer", "fetch_max_byts", "fetch_max_bytes"),
        (
            "consumer",
            "fetch_partition_max_byte",
            "fetch_partition_max_bytes",
        ),
        ("consumer", "fetch_max_wait", "fetch_max_wait_ms"),
        ("consumer", "isolation_levl", "isolation_level"),
        ("consumer", "group_instance", "group_instance_id"),
    ];
    for (section, typo, key) in cases {
        assert_fails(
            &for_client("memory", section, &format!("{typo} = 1")),
            &[],
            &format!("kafka.{section}.{typo}"),
            &format!("unknown key; did you mean `{key}`?"),
        );
    }
    assert_fails(
        &for_client("memory", "producer", "isolation_level = \"read_committed\""),
        &[],
        "kafka.producer.isolation_level",
        "unknown key; `isolation_level` belongs in [kafka.consumer]",
    );
    assert_fails(
        &for_client("memory", "consumer", "batch_bytes = 1"),
        &[],
        "kafka.consumer.batch_bytes",
        "unknown key; `batch_bytes` belongs in [kafka.producer]",
    );
}

// --- [kafka.security] ---------------------------------------------------------------------------

/// A file of the temp directory holding `contents`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "godev-kafka-security-{}-{n}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `MINIMAL` with `client`, then `[kafka.security]` holding `body`.
fn secured(client: &str, body: &str) -> String {
    for_client(client, "security", body)
}

const PASSWORD_TEXT: &str = "hunter2-Pa55";
const TOKEN_TEXT: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";

#[test]
fn the_security_keys_are_read_from_the_file() {
    let ca = TempFile::new("ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let cert = TempFile::new("client.pem", b"-----BEGIN CERTIFICATE-----\n");
    let key = TempFile::new("client.key", b"-----BEGIN PRIVATE KEY-----\n");
    let password = TempFile::new("password", format!("{PASSWORD_TEXT}\n").as_bytes());
    let text = secured(
        "native",
        &format!(
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"scram-sha-512\"\nusername = \"alice\"\n\
             password_file = '{}'\nca_file = '{}'\ncert_file = '{}'\nkey_file = '{}'\n\
             verify_hostname = false\n",
            password.path(),
            ca.path(),
            cert.path(),
            key.path()
        ),
    );
    // `native` honours every key; the memory backend ignores them.
    let clients: &[&str] = &[
        #[cfg(feature = "native")]
        "native",
        "memory",
    ];
    for client in clients {
        let config = load(&text.replace("\"native\"", &format!("\"{client}\"")), &[]).unwrap();
        assert_eq!(
            config.security(),
            &SecuritySettings {
                protocol: SecurityProtocol::SaslSsl,
                tls: Some(TlsOptions {
                    ca_file: Some(ca.path().into()),
                    cert_file: Some(cert.path().into()),
                    key_file: Some(key.path().into()),
                    verify_hostname: false,
                }),
                sasl: Some(SaslSettings {
                    mechanism: SaslMechanism::ScramSha512,
                    username: Some("alice".into()),
                    password: Some(Secret::new(PASSWORD_TEXT)),
                    token: None,
                }),
            },
            "{client}"
        );
    }
}

#[test]
fn the_security_keys_are_read_from_the_environment() {
    let ca = TempFile::new("ca.pem", b"ca");
    let cert = TempFile::new("cert.pem", b"cert");
    let key = TempFile::new("key.pem", b"key");
    let config = load(
        &secured(
            "memory",
            "protocol = \"ssl\"\nca_file = '/nonexistent/ca.pem'",
        ),
        &[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SECURITY_SASL_MECHANISM", "plain"),
            ("KAFKA_SECURITY_USERNAME", "bob"),
            ("KAFKA_SECURITY_PASSWORD", " spaces are kept "),
            ("KAFKA_SECURITY_CA_FILE", ca.path()),
            ("KAFKA_SECURITY_CERT_FILE", cert.path()),
            ("KAFKA_SECURITY_KEY_FILE", key.path()),
            ("KAFKA_SECURITY_VERIFY_HOSTNAME", "no"),
        ],
    )
    .unwrap();
    let security = config.security();
    assert_eq!(security.protocol, SecurityProtocol::SaslSsl);
    let tls = security.tls.as_ref().unwrap();
    assert_eq!(tls.ca_file.as_deref(), Some(ca.0.as_path()));
    assert_eq!(tls.cert_file.as_deref(), Some(cert.0.as_path()));
    assert_eq!(tls.key_file.as_deref(), Some(key.0.as_path()));
    assert!(!tls.verify_hostname);
    let sasl = security.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::Plain);
    assert_eq!(sasl.username.as_deref(), Some("bob"));
    assert_eq!(
        sasl.password.as_ref().unwrap().expose(),
        " spaces are kept "
    );

    let token = TempFile::new("token", format!("{TOKEN_TEXT}\r\n").as_bytes());
    let from_files = load(
        MINIMAL,
        &[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SECURITY_SASL_MECHANISM", "oauthbearer"),
            ("KAFKA_SECURITY_TOKEN_FILE", token.path()),
            ("KAFKA_CLIENT", "memory"),
        ],
    )
    .unwrap();
    let sasl = from_files.security().sasl.as_ref().unwrap();
    assert_eq!(sasl.token.as_ref().unwrap().expose(), TOKEN_TEXT);
    assert!(from_files.security().tls.is_none());
}

/// Every protocol and every mechanism, each with the keys it needs; TLS without a CA file
/// trusts the system's roots and checks the host name.
#[test]
fn every_protocol_and_mechanism_is_read() {
    for protocol in schema::PROTOCOLS {
        let sasl = protocol.starts_with("sasl_");
        let mechanisms: &[&str] = if sasl { schema::SASL_MECHANISMS } else { &[""] };
        for mechanism in mechanisms {
            let credentials = match *mechanism {
                "" => String::new(),
                "oauthbearer" => format!("sasl_mechanism = \"{mechanism}\"\ntoken = \"t\"\n"),
                _ => format!(
                    "sasl_mechanism = \"{mechanism}\"\nusername = \"u\"\npassword = \"p\"\n"
                ),
            };
            let text = secured(
                "memory",
                &format!("protocol = \"{protocol}\"\n{credentials}"),
            );
            let config = load(&text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
            let security = config.security();
            assert_eq!(security.protocol.as_str(), *protocol);
            assert_eq!(security.sasl.is_some(), sasl, "{text}");
            if let Some(s) = &security.sasl {
                assert_eq!(s.mechanism.as_str(), *mechanism);
            }
            let tls = protocol.ends_with("ssl");
            assert_eq!(security.tls, tls.then(TlsOptions::default), "{text}");
        }
    }
    assert_eq!(
        schema::SASL_MECHANISMS,
        crate::security::SaslMechanism::ALL.map(SaslMechanism::as_str),
        "the config's names are the mechanisms'"
    );
    // `protocol = "plaintext"` said out loud is the default.
    let plain = load(&secured("kafka", "protocol = \"plaintext\""), &[]).unwrap();
    assert_eq!(plain.security(), &SecuritySettings::default());
}

#[test]
fn secret_files_are_read_at_load_with_their_trailing_newline_trimmed() {
    for (contents, password) in [
        ("s3cret", "s3cret"),
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret\n\n", "s3cret"),
        (" s3 cret \n", " s3 cret "),
        ("line one\nline two\n", "line one\nline two"),
    ] {
        let file = TempFile::new("password", contents.as_bytes());
        let config = load(
            &secured(
                "memory",
                &format!(
                    "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\n\
                     password_file = '{}'",
                    file.path()
                ),
            ),
            &[],
        )
        .unwrap();
        let sasl = config.security().sasl.as_ref().unwrap();
        assert_eq!(
            sasl.password.as_ref().unwrap().expose(),
            password,
            "{contents:?}"
        );
    }
}

/// The security errors, each whole: the key, what is wrong and the fix.
#[test]
fn security_errors_name_the_key_and_the_fix() {
    let no_sasl = "has no effect with `kafka.security.protocol` = \"plaintext\": only \
                   `sasl_plaintext` and `sasl_ssl` authenticate with SASL; set \
                   `kafka.security.protocol` to one of those, or remove this key";
    for line in [
        "sasl_mechanism = \"plain\"",
        "username = \"u\"",
        "password = \"p\"",
        "password_file = '/p'",
        "token = \"t\"",
        "token_file = '/t'",
    ] {
        let key = line.split(' ').next().unwrap();
        assert_fails(
            &secured("memory", line),
            &[],
            &format!("kafka.security.{key}"),
            no_sasl,
        );
    }
    assert_fails(
        &secured("memory", "protocol = \"ssl\""),
        &[("KAFKA_SECURITY_USERNAME", "u")],
        "KAFKA_SECURITY_USERNAME",
        "has no effect with `kafka.security.protocol` = \"ssl\": only `sasl_plaintext` and \
         `sasl_ssl` authenticate with SASL; set `kafka.security.protocol` to one of those, or \
         remove this key",
    );
    let sasl_plaintext = "protocol = \"sasl_plaintext\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\npassword = \"p\"\n";
    for line in [
        "ca_file = '/ca.pem'",
        "cert_file = '/c.pem'",
        "key_file = '/k.pem'",
        "verify_hostname = true",
    ] {
        let key = line.split(' ').next().unwrap();
        assert_fails(
            &secured("memory", &format!("{sasl_plaintext}{line}")),
            &[],
            &format!("kafka.security.{key}"),
            "has no effect with `kafka.security.protocol` = \"sasl_plaintext\": only `ssl` and \
             `sasl_ssl` use TLS; set `kafka.security.protocol` to one of those, or remove this \
             key",
        );
    }
    assert_fails(
        &secured("memory", ""),
        &[("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")],
        "kafka.security.sasl_mechanism",
        "missing: `KAFKA_SECURITY_PROTOCOL` = \"sasl_ssl\" needs a SASL mechanism; add \
         `sasl_mechanism = \"plain\"` (or `scram-sha-256`, `scram-sha-512`, `oauthbearer`) to \
         [kafka.security] or set KAFKA_SECURITY_SASL_MECHANISM",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"scram-sha-256\"",
        ),
        &[],
        "kafka.security.username",
        "missing: `kafka.security.sasl_mechanism` = \"scram-sha-256\" needs a user name; add \
         `username = \"...\"` to [kafka.security] or set KAFKA_SECURITY_USERNAME",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"\"",
        ),
        &[],
        "kafka.security.username",
        "must not be empty",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"",
        ),
        &[],
        "kafka.security.password",
        "missing: `kafka.security.sasl_mechanism` = \"plain\" needs a password; set \
         KAFKA_SECURITY_PASSWORD, or add `password_file = \"/path/to/password\"` to \
         [kafka.security]",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"",
        ),
        &[("KAFKA_SECURITY_PASSWORD", "")],
        "KAFKA_SECURITY_PASSWORD",
        "must not be empty",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\n\
             password_file = '/run/secrets/kafka'",
        ),
        &[("KAFKA_SECURITY_PASSWORD", PASSWORD_TEXT)],
        "kafka.security.password_file",
        "is set, and so is `KAFKA_SECURITY_PASSWORD`; keep one of the two: the password or the \
         file that holds it",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"scram-sha-512\"\nusername = \"u\"\n\
             password = \"p\"\ntoken = \"t\"",
        ),
        &[],
        "kafka.security.token",
        "has no effect with `kafka.security.sasl_mechanism` = \"scram-sha-512\", which \
         authenticates with `username` and `password`; remove this key, or set \
         `kafka.security.sasl_mechanism` to \"oauthbearer\"",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nusername = \"u\"\ntoken = \"t\"",
        ),
        &[("KAFKA_SECURITY_SASL_MECHANISM", "oauthbearer")],
        "kafka.security.username",
        "has no effect with `KAFKA_SECURITY_SASL_MECHANISM` = \"oauthbearer\", which \
         authenticates with a token (`token` or `token_file`); remove this key, or set \
         `KAFKA_SECURITY_SASL_MECHANISM` to \"plain\", \"scram-sha-256\" or \"scram-sha-512\"",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"oauthbearer\"",
        ),
        &[],
        "kafka.security.token",
        "missing: `kafka.security.sasl_mechanism` = \"oauthbearer\" needs a token; set \
         KAFKA_SECURITY_TOKEN, or add `token_file = \"/path/to/token\"` to [kafka.security] (a \
         program that fetches its tokens gives a `TokenProvider` in `NativeOptions::sasl` \
         instead)",
    );
    assert_fails(
        &secured(
            "memory",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"oauthbearer\"\ntoken = \"t\"\n\
             token_file = '/t'",
        ),
        &[],
        "kafka.security.token_file",
        "is set, and so is `kafka.security.token`; keep one of the two: the token or the file \
         that holds it",
    );

    // Mutual TLS needs both halves.
    let cert = TempFile::new("cert.pem", b"cert");
    assert_fails(
        &secured(
            "memory",
            &format!("protocol = \"ssl\"\ncert_file = '{}'", cert.path()),
        ),
        &[],
        "kafka.security.key_file",
        "missing: `kafka.security.cert_file` is set, and mutual TLS needs the client's private \
         key too; add `key_file = \"...\"` to [kafka.security] or set KAFKA_SECURITY_KEY_FILE, \
         or remove `kafka.security.cert_file`",
    );
    assert_fails(
        &secured("memory", "protocol = \"ssl\""),
        &[("KAFKA_SECURITY_KEY_FILE", cert.path())],
        "kafka.security.cert_file",
        "missing: `KAFKA_SECURITY_KEY_FILE` is set, and mutual TLS needs the client's \
         certificate too; add `cert_file = \"...\"` to [kafka.security] or set \
         KAFKA_SECURITY_CERT_FILE, or remove `KAFKA_SECURITY_KEY_FILE`",
    );
}

/// A file named must be there when the config is loaded: the error names the key and the
/// path.
#[test]
fn files_named_must_be_readable_at_load() {
    let missing = "/nonexistent/godev-kafka/ca.pem";
    assert_fails(
        &secured(
            "memory",
            &format!("protocol = \"ssl\"\nca_file = '{missing}'"),
        ),
        &[],
        "kafka.security.ca_file",
        &format!("cannot read `{missing}`: No such file or directory (os error 2); fix the path"),
    );
    let cert = TempFile::new("cert.pem", b"cert");
    assert_fails(
        &secured(
            "memory",
            &format!("protocol = \"ssl\"\ncert_file = '{}'", cert.path()),
        ),
        &[("KAFKA_SECURITY_KEY_FILE", missing)],
        "KAFKA_SECURITY_KEY_FILE",
        &format!("cannot read `{missing}`: No such file or directory (os error 2); fix the path"),
    );
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    assert_fails(
        &secured("memory", &format!("protocol = \"ssl\"\nca_file = '{dir}'")),
        &[],
        "kafka.security.ca_file",
        &format!("`{dir}` is not a file; name the PEM file itself"),
    );
    assert_fails(
        &secured("memory", "protocol = \"ssl\"\nca_file = ''"),
        &[],
        "kafka.security.ca_file",
        "must not be empty",
    );
    let sasl = "protocol = \"sasl_plaintext\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\n";
    let secrets = "/nonexistent/godev-kafka/password";
    assert_fails(
        &secured("memory", sasl),
        &[("KAFKA_SECURITY_PASSWORD_FILE", secrets)],
        "KAFKA_SECURITY_PASSWORD_FILE",
        &format!(
            "cannot read `{secrets}`: No such file or directory (os error 2); create it or fix \
             the path"
        ),
    );
    let empty = TempFile::new("empty", b"\n");
    assert_fails(
        &secured(
            "memory",
            &format!("{sasl}password_file = '{}'", empty.path()),
        ),
        &[],
        "kafka.security.password_file",
        &format!("`{}` is empty; write the password in it", empty.path()),
    );
    let oauth = "protocol = \"sasl_plaintext\"\nsasl_mechanism = \"oauthbearer\"\n";
    assert_fails(
        &secured("memory", &format!("{oauth}token_file = '{}'", empty.path())),
        &[],
        "kafka.security.token_file",
        &format!("`{}` is empty; write the token in it", empty.path()),
    );
}

#[test]
fn security_keys_and_values_have_did_you_mean() {
    for (typo, key) in [
        ("protocl", "protocol"),
        ("sasl_mechanisms", "sasl_mechanism"),
        ("user_name", "username"),
        ("pasword", "password"),
        ("password_fle", "password_file"),
        ("tokn", "token"),
        ("ca_files", "ca_file"),
        ("cert_fil", "cert_file"),
        ("keyfile", "key_file"),
        ("verify_host_name", "verify_hostname"),
    ] {
        assert_fails(
            &secured("memory", &format!("{typo} = \"x\"")),
            &[],
            &format!("kafka.security.{typo}"),
            &format!("unknown key; did you mean `{key}`?"),
        );
    }
    assert_fails(
        &with("[kafka.securty]\nprotocol = \"ssl\"\n"),
        &[],
        "kafka.securty",
        "unknown key; did you mean `security`?",
    );
    assert_fails(
        &for_client("memory", "consumer", "sasl_mechanism = \"plain\""),
        &[],
        "kafka.consumer.sasl_mechanism",
        "unknown key; `sasl_mechanism` belongs in [kafka.security]",
    );
    assert_fails(
        &secured("memory", "protocol = \"sasl-ssl\""),
        &[],
        "kafka.security.protocol",
        "expected one of `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`, found `sasl-ssl`; \
         did you mean `sasl_ssl`?",
    );
    assert_fails(
        &secured("memory", "protocol = \"tls\""),
        &[],
        "kafka.security.protocol",
        "expected one of `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`, found `tls`",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_SECURITY_SASL_MECHANISM", "SCRAM-SHA-256")],
        "KAFKA_SECURITY_SASL_MECHANISM",
        "expected one of `plain`, `scram-sha-256`, `scram-sha-512`, `oauthbearer`, found \
         `SCRAM-SHA-256`; did you mean `scram-sha-256`?",
    );
    assert_fails(
        &secured("memory", "sasl_mechanism = \"scram_sha_512\""),
        &[],
        "kafka.security.sasl_mechanism",
        "expected one of `plain`, `scram-sha-256`, `scram-sha-512`, `oauthbearer`, found \
         `scram_sha_512`; did you mean `scram-sha-512`?",
    );
    assert_fails(
        &secured("memory", "verify_hostname = \"no\""),
        &[],
        "kafka.security.verify_hostname",
        "expected a boolean, found a string",
    );
    assert_fails(
        MINIMAL,
        &[("KAFKA_SECURITY_VERIFY_HOSTNAME", "maybe")],
        "KAFKA_SECURITY_VERIFY_HOSTNAME",
        "expected true or false (or 1/0, yes/no), found `maybe`",
    );
    assert_fails(
        &secured("memory", "password = 1234"),
        &[],
        "kafka.security.password",
        "expected a string, found an integer",
    );
    // Values of the other sections get the suggestion too.
    assert_fails(
        &with("codec = \"Tagged\"\n"),
        &[],
        "kafka.codec",
        "expected one of `cloudevents`, `tagged`, found `Tagged`; did you mean `tagged`?",
    );
}

/// A SASL config with the password given as `KAFKA_SECURITY_PASSWORD`, for `client`.
fn with_password(client: &str) -> (String, [(&'static str, &'static str); 1]) {
    (
        secured(
            client,
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"alice\"",
        ),
        [("KAFKA_SECURITY_PASSWORD", PASSWORD_TEXT)],
    )
}

/// Neither the config's `Debug` nor any error shows a password or a token, nor what a
/// secret file holds.
#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let (text, env) = with_password("memory");
    let config = load(&text, &env).unwrap();
    let debug = format!("{config:?} {:?} {config:#?}", config.security());
    assert!(!debug.contains(PASSWORD_TEXT), "{debug}");
    assert!(
        debug.contains("<redacted>") && debug.contains("alice"),
        "{debug}"
    );

    let token = load(
        &secured(
            "memory",
            &format!(
                "protocol = \"sasl_ssl\"\nsasl_mechanism = \"oauthbearer\"\ntoken = \"{TOKEN_TEXT}\""
            ),
        ),
        &[],
    )
    .unwrap();
    let debug = format!("{token:?} {token:#?}");
    assert!(
        !debug.contains(TOKEN_TEXT) && debug.contains("<redacted>"),
        "{debug}"
    );

    // An error about another key, with the secrets set.
    let mut errors = vec![
        fails(
            &format!("{text}\n[kafka.consumer]\nmax_attempts = 0\n"),
            &env,
        ),
        fails(&format!("{text}\nca_file = '/nonexistent/ca.pem'"), &env),
        fails(&text, &[env[0], ("KAFKA_CONSUMER_QUEUE_CAPACITY", "none")]),
        fails(&text, &[env[0], ("KAFKA_SECURITY_PASSWORD_FILE", "/p")]),
        // The secret's own key: wrong where it is, empty, or of the wrong type.
        fails(
            &secured("memory", &format!("password = \"{PASSWORD_TEXT}\"")),
            &[],
        ),
        fails(
            &secured(
                "memory",
                &format!("protocol = \"sasl_ssl\"\ntoken = \"{TOKEN_TEXT}\""),
            ),
            &[("KAFKA_SECURITY_SASL_MECHANISM", "plain")],
        ),
        fails(
            &secured("memory", &format!("token = \"{TOKEN_TEXT}\"")),
            &[("KAFKA_SECURITY_PROTOCOL", "ssl")],
        ),
        // A syntax error on the secret's line.
        fails(
            &secured("memory", &format!("password = {PASSWORD_TEXT}")),
            &[],
        ),
        fails(
            &secured(
                "memory",
                &format!("password = \"{PASSWORD_TEXT}\" trailing"),
            ),
            &[],
        ),
        fails(
            &secured("memory", &format!("password = \"{PASSWORD_TEXT}")),
            &[],
        ),
        // A misspelt key holding a secret.
        fails(
            &secured("memory", &format!("pasword = \"{PASSWORD_TEXT}\"")),
            &[],
        ),
    ];
    // A file holding the secret, named where it is wrong, next to a password, or unreadable
    // as text: the error names the path, never the contents.
    let file = TempFile::new("secret", PASSWORD_TEXT.as_bytes());
    let mut binary = PASSWORD_TEXT.as_bytes().to_vec();
    binary.push(0xff);
    let binary = TempFile::new("binary", &binary);
    for (body, env) in [
        (format!("password_file = '{}'", file.path()), None),
        (format!("token_file = '{}'", file.path()), None),
        (
            format!(
                "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\n\
                 password_file = '{}'",
                file.path()
            ),
            Some(("KAFKA_SECURITY_PASSWORD", "other")),
        ),
        (
            format!(
                "protocol = \"sasl_ssl\"\nsasl_mechanism = \"plain\"\nusername = \"u\"\n\
                 password_file = '{}'",
                binary.path()
            ),
            None,
        ),
    ] {
        let env: Vec<_> = env.into_iter().collect();
        let (key, shown) = fails(&secured("memory", &body), &env);
        assert!(key.ends_with("_file"), "{key}: {shown}");
        if body.contains(binary.path()) {
            assert_eq!(
                shown,
                format!(
                    "config key `kafka.security.password_file`: cannot read `{}`: stream did not \
                     contain valid UTF-8",
                    binary.path()
                )
            );
        }
        errors.push((key, shown));
    }
    for (key, shown) in &errors {
        assert!(
            !shown.contains(PASSWORD_TEXT) && !shown.contains("hunter2"),
            "{key}: {shown}"
        );
        assert!(!shown.contains(TOKEN_TEXT), "{key}: {shown}");
    }
    assert_eq!(
        errors[4],
        (
            "kafka.security.password".to_owned(),
            "config key `kafka.security.password`: has no effect with `kafka.security.protocol` = \
             \"plaintext\": only `sasl_plaintext` and `sasl_ssl` authenticate with SASL; set \
             `kafka.security.protocol` to one of those, or remove this key"
                .to_owned()
        )
    );
}

/// What each backend cannot honour of `[kafka.security]`, with its message whole; `memory`
/// ignores the keys and `native` honours all of them.
#[test]
fn the_backends_refuse_the_security_they_cannot_honour() {
    let kafka = |protocol: &str| {
        format!(
            "the `kafka` client connects in plaintext only (the `kafka` crate has no SASL, and \
             its TLS needs OpenSSL, which this project does not link) and cannot honour \
             `{protocol}`; use `client = \"native\"` (cargo feature `native`: TLS and every \
             SASL mechanism)"
        )
    };
    let credentials = "sasl_mechanism = \"plain\"\nusername = \"u\"\npassword = \"p\"\n";
    for (protocol, rest) in [
        ("ssl", ""),
        ("sasl_plaintext", credentials),
        ("sasl_ssl", credentials),
    ] {
        let body = format!("protocol = \"{protocol}\"\n{rest}");
        assert_fails(
            &secured("kafka", &body),
            &[],
            "kafka.security.protocol",
            &kafka(protocol),
        );
        // The default client is `kafka`; a variable is named as the variable.
        assert_fails(
            &with(&format!("[kafka.security]\n{rest}")),
            &[("KAFKA_SECURITY_PROTOCOL", protocol)],
            "KAFKA_SECURITY_PROTOCOL",
            &kafka(protocol),
        );
        let memory = load(&secured("memory", &body), &[]).unwrap();
        assert!(memory.check_client(Client::Memory).is_ok());
        assert!(memory.check_client(Client::Native).is_ok(), "{body}");
        assert_eq!(
            memory.check_client(Client::Kafka).unwrap_err().to_string(),
            format!("config key `kafka.security.protocol`: {}", kafka(protocol))
        );
    }

    let confluent = |mechanism: &str| {
        format!(
            "config key `kafka.security.sasl_mechanism`: the `confluent` client authenticates \
             with SASL PLAIN only (the `confluent-kafka` crate has no {mechanism}); use `client \
             = \"native\"` (cargo feature `native`: every SASL mechanism), or `sasl_mechanism = \
             \"plain\"`"
        )
    };
    for (mechanism, credentials) in [
        ("scram-sha-256", "username = \"u\"\npassword = \"p\""),
        ("scram-sha-512", "username = \"u\"\npassword = \"p\""),
        ("oauthbearer", "token = \"t\""),
    ] {
        let body = format!(
            "protocol = \"sasl_plaintext\"\nsasl_mechanism = \"{mechanism}\"\n{credentials}"
        );
        let config = load(&secured("memory", &body), &[]).unwrap();
        assert_eq!(
            config
                .check_client(Client::Confluent)
                .unwrap_err()
                .to_string(),
            confluent(&mechanism.to_ascii_uppercase())
        );
        assert!(config.check_client(Client::Native).is_ok());
        #[cfg(feature = "confluent")]
        assert_eq!(
            load(&secured("confluent", &body), &[])
                .unwrap_err()
                .to_string(),
            confluent(&mechanism.to_ascii_uppercase())
        );
        #[cfg(feature = "native")]
        assert!(load(&secured("native", &body), &[]).is_ok());
    }
    // The confluent client honours PLAIN, and TLS with or without it.
    for (protocol, rest) in [
        ("sasl_plaintext", credentials.to_owned()),
        ("ssl", String::new()),
        ("sasl_ssl", credentials.to_owned()),
    ] {
        let body = format!("protocol = \"{protocol}\"\n{rest}");
        let config = load(&secured("memory", &body), &[]).unwrap();
        assert!(config.check_client(Client::Confluent).is_ok(), "{protocol}");
        #[cfg(feature = "confluent")]
        assert!(
            load(&secured("confluent", &body), &[]).is_ok(),
            "{protocol}"
        );
    }
}

/// `auto` is checked against the backend it picks: `native` in a build with it, which
/// honours every key; the message says `auto` picked the backend that refuses.
#[test]
fn auto_is_checked_for_security_against_the_backend_it_picked() {
    let body = "protocol = \"sasl_plaintext\"\nsasl_mechanism = \"scram-sha-256\"\n\
                username = \"u\"\npassword = \"p\"";
    // With `native` built, `auto` is `native` at load; without, it is checked at connect.
    let config = load(&secured("auto", body), &[]).unwrap();
    assert!(config.check_client(Client::Auto).is_ok());
    assert!(config.check_client(Client::Native).is_ok());
    assert_eq!(
        config.check_client(Client::Kafka).unwrap_err().to_string(),
        "config key `kafka.security.protocol`: `client = \"auto\"` picked `kafka`: the `kafka` \
         client connects in plaintext only (the `kafka` crate has no SASL, and its TLS needs \
         OpenSSL, which this project does not link) and cannot honour `sasl_plaintext`; use \
         `client = \"native\"` (cargo feature `native`: TLS and every SASL mechanism)"
    );
    assert_eq!(
        config
            .check_client(Client::Confluent)
            .unwrap_err()
            .to_string(),
        "config key `kafka.security.sasl_mechanism`: `client = \"auto\"` picked `confluent`: the \
         `confluent` client authenticates with SASL PLAIN only (the `confluent-kafka` crate has \
         no SCRAM-SHA-256); use `client = \"native\"` (cargo feature `native`: every SASL \
         mechanism), or `sasl_mechanism = \"plain\"`"
    );
}
