//! The config's behaviour through its public entry points: every error message exactly,
//! defaults, the environment overlay, and the repository's example file.

use std::collections::HashMap;
use std::time::Duration;

use super::schema::{KAFKA, Kind, SECTIONS};
use super::*;
use crate::transport::OffsetReset;

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
    #[cfg(feature = "kafka")]
    {
        let mut expected = KafkaOptions::new(["127.0.0.1:9092"]);
        expected.fetch_max_bytes = 1024 * 1024 + 64 * 1024; // room for the largest accepted record
        assert_eq!(config.kafka_options(), expected);
    }
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
        retries = 2
        retry_backoff_ms = 250
        request_timeout_ms = 5000
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
            group_instance_id: None,
        }
    );
    #[cfg(feature = "kafka")]
    {
        use crate::transport::{Acks, Compression};
        let options = config.kafka_options();
        let mut expected = KafkaOptions::new(["kafka-1:9092", "[::1]:9093", "10.0.0.3:9094"]);
        expected.acks = Acks::One;
        expected.compression = Compression::Gzip;
        expected.linger = Duration::from_millis(7);
        expected.batch_size = 100;
        expected.retries = 2;
        expected.retry_backoff = Duration::from_millis(250);
        expected.request_timeout = Duration::from_secs(5);
        assert_eq!(options, expected);
    }
    #[cfg(feature = "confluent")]
    {
        use crate::transport::confluent::ConfluentOptions;
        use crate::transport::{Acks, Compression};
        let options = config.confluent_options();
        let mut expected = ConfluentOptions::new(["kafka-1:9092", "[::1]:9093", "10.0.0.3:9094"]);
        expected.acks = Acks::One;
        expected.idempotence = false;
        expected.compression = Compression::Gzip;
        expected.linger = Duration::from_millis(7);
        expected.request_timeout = Duration::from_secs(5);
        assert_eq!(options, expected);
    }
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
                "the `kafka` backend cannot write {codec} batches (the `kafka` crate knows gzip \
                 and snappy); use `client = \"native\"` or `\"confluent\"`, or gzip or snappy"
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

/// With the feature, `acks = "all"` (the default) keeps the confluent producer idempotent.
#[cfg(feature = "confluent")]
#[test]
fn confluent_options_stay_idempotent_with_acks_all() {
    let config = load(&with("client = \"confluent\"\n"), &[]).unwrap();
    let options = config.confluent_options();
    assert!(options.idempotence);
    assert_eq!(options.acks, crate::transport::Acks::All);
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
    #[cfg(feature = "kafka")]
    assert_eq!(config.kafka_options().linger, Duration::from_millis(20));
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
    let kafka = Config::default_for(["b:9092"]).unwrap();
    assert_eq!(kafka.client(), Client::Kafka);
    assert_eq!(
        kafka,
        load(
            "[kafka]\nbrokers = [\"b:9092\"]\ngroup_id = \"godev-kafka\"",
            &[]
        )
        .unwrap()
    );
    let empty: [&str; 0] = [];
    assert_eq!(
        Config::default_for(empty).unwrap_err().to_string(),
        "config key `kafka.brokers`: `kafka.brokers` is empty; list at least one broker as host:port"
    );
    assert_eq!(
        Config::default_for(["localhost"]).unwrap_err().to_string(),
        "config key `kafka.brokers`: `localhost` is not host:port"
    );
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
        "unknown key; expected one of `brokers`, `group_id`, `client`, `codec`, `source`, `topics`, `control`, `producer`, `consumer`",
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

#[cfg(feature = "kafka")]
#[test]
fn the_fetch_limit_covers_the_largest_record_the_consumer_accepts() {
    let small = load(&with(""), &[]).unwrap().kafka_options();
    assert_eq!(small.fetch_max_bytes, 1024 * 1024 + 64 * 1024);
    let big = load(&with("[kafka.consumer]\nmax_record_bytes = 4194304\n"), &[])
        .unwrap()
        .kafka_options();
    assert!(
        big.fetch_max_bytes >= 4 * 1024 * 1024,
        "{}",
        big.fetch_max_bytes
    );
}
