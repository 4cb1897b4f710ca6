//! Every key the config file knows, once: the file reader, the environment overlay, the
//! did-you-mean suggestions and the validation all read these tables.

use crate::security::SaslMechanism;

/// The largest millisecond value: Kafka carries timeouts as 32-bit milliseconds.
pub(super) const MAX_MILLIS: u64 = i32::MAX as u64;
/// The largest count (records, bytes, attempts).
pub(super) const MAX_COUNT: u64 = u32::MAX as u64;
/// The largest byte count Kafka carries in 32 bits (fetch sizes, batch sizes).
pub(super) const MAX_INT32: u64 = i32::MAX as u64;

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Any string.
    Str,
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// `true` or `false` (in the environment also 1/0, yes/no).
    Bool,
    /// A whole number in `min..=max`.
    Int { min: u64, max: u64 },
    /// An array of strings (in the environment a comma-separated list).
    List,
    /// A string that is a secret (a password, a token): read into a
    /// [`Secret`](crate::security::Secret) at once, so that nothing prints it.
    Secret,
}

impl Kind {
    /// What a value of this kind is, with its article: "a boolean".
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Str | Kind::Choice(_) | Kind::Secret => "a string",
            Kind::Bool => "a boolean",
            Kind::Int { .. } => "an integer",
            Kind::List => "an array of strings",
        }
    }

    /// `n` if it is in range for an [`Kind::Int`], or what is wrong with it.
    pub(super) fn check_int(self, n: i64) -> Result<u64, String> {
        let Kind::Int { min, max } = self else {
            return Err(format!("expected {}, found an integer", self.describe()));
        };
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) if n > max => Err(format!("must be at most {max}, found {n}")),
            _ if min == 0 => Err(format!("must not be negative, found {n}")),
            _ => Err(format!("must be at least {min}, found {n}")),
        }
    }

    /// `s` if it is one of a [`Kind::Choice`]'s values, or the list of those, with the
    /// closest one when `s` looks like a typo of it.
    pub(super) fn check_choice(self, s: &str) -> Result<&str, String> {
        let Kind::Choice(choices) = self else {
            return Ok(s);
        };
        if choices.contains(&s) {
            return Ok(s);
        }
        let accepted = choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = super::suggest::closest(s, choices.iter().copied())
            .map(|close| format!("; did you mean `{close}`?"))
            .unwrap_or_default();
        Err(format!("expected one of {accepted}, found `{s}`{hint}"))
    }
}

/// One key of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
}

/// A table of the file with a fixed set of keys.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Section {
    /// The table's name inside its parent (`control`).
    pub(super) name: &'static str,
    /// The dotted path of the table (`kafka.control`).
    pub(super) path: &'static str,
    /// The environment variables of its keys start with this (`KAFKA_CONTROL_`).
    pub(super) env_prefix: &'static str,
    pub(super) keys: &'static [Key],
}

impl Section {
    /// The dotted key of `key`, as error messages name it.
    pub(super) fn dotted(&self, key: &Key) -> String {
        format!("{}.{}", self.path, key.name)
    }

    /// The environment variable that overrides `key`.
    pub(super) fn env_var(&self, key: &Key) -> String {
        format!("{}{}", self.env_prefix, key.name.to_ascii_uppercase())
    }
}

const fn key(name: &'static str, kind: Kind) -> Key {
    Key { name, kind }
}

const fn millis() -> Kind {
    Kind::Int {
        min: 0,
        max: MAX_MILLIS,
    }
}

const fn count(min: u64) -> Kind {
    Kind::Int {
        min,
        max: MAX_COUNT,
    }
}

/// A positive size Kafka carries in 32 bits.
const fn int32() -> Kind {
    Kind::Int {
        min: 1,
        max: MAX_INT32,
    }
}

/// A duration of at least one millisecond.
const fn positive_millis() -> Kind {
    Kind::Int {
        min: 1,
        max: MAX_MILLIS,
    }
}

/// The only top-level table.
pub(super) const ROOT: &str = "kafka";

pub(super) const CLIENTS: &[&str] = &["kafka", "confluent", "native", "auto", "memory"];
pub(super) const CODECS: &[&str] = &["cloudevents", "tagged"];
pub(super) const ACKS: &[&str] = &["all", "one", "none"];
pub(super) const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
pub(super) const OFFSET_RESETS: &[&str] = &["earliest", "latest"];
pub(super) const ISOLATION_LEVELS: &[&str] = &["read_uncommitted", "read_committed"];
pub(super) const UNKNOWN_TAGS: &[&str] = &["skip", "dead_letter", "fail"];

pub(super) const BROKERS: Key = key("brokers", Kind::List);
pub(super) const GROUP_ID: Key = key("group_id", Kind::Str);
pub(super) const CLIENT: Key = key("client", Kind::Choice(CLIENTS));
pub(super) const CODEC: Key = key("codec", Kind::Choice(CODECS));
pub(super) const SOURCE: Key = key("source", Kind::Str);

/// `[kafka]`.
pub(super) const KAFKA: Section = Section {
    name: ROOT,
    path: ROOT,
    env_prefix: "KAFKA_",
    keys: &[BROKERS, GROUP_ID, CLIENT, CODEC, SOURCE],
};

/// `[kafka.topics]`: any logical name, each a topic name.
pub(super) const TOPICS: &str = "topics";
pub(super) const TOPICS_PATH: &str = "kafka.topics";
pub(super) const TOPICS_ENV_PREFIX: &str = "KAFKA_TOPICS_";

pub(super) const PRODUCER_ENABLED: Key = key("producer_enabled", Kind::Bool);
pub(super) const CONSUMER_ENABLED: Key = key("consumer_enabled", Kind::Bool);

/// `[kafka.control]`.
pub(super) const CONTROL: Section = Section {
    name: "control",
    path: "kafka.control",
    env_prefix: "KAFKA_CONTROL_",
    keys: &[PRODUCER_ENABLED, CONSUMER_ENABLED],
};

pub(super) const ACKS_KEY: Key = key("acks", Kind::Choice(ACKS));
pub(super) const COMPRESSION: Key = key("compression", Kind::Choice(COMPRESSIONS));
pub(super) const LINGER_MS: Key = key("linger_ms", millis());
pub(super) const BATCH_SIZE: Key = key("batch_size", count(1));
// No longer used: known, so that setting it is refused as such (see `backends`), not as unknown.
pub(super) const RETRIES: Key = key("retries", count(0));
pub(super) const RETRY_BACKOFF_MS: Key = key("retry_backoff_ms", millis());
pub(super) const REQUEST_TIMEOUT_MS: Key = key("request_timeout_ms", positive_millis());
pub(super) const BATCH_BYTES: Key = key("batch_bytes", int32());
pub(super) const MAX_IN_FLIGHT: Key = key("max_in_flight", int32());
pub(super) const IDEMPOTENCE: Key = key("idempotence", Kind::Bool);
pub(super) const DELIVERY_TIMEOUT_MS: Key = key("delivery_timeout_ms", positive_millis());
pub(super) const BUFFER_BYTES: Key = key("buffer_bytes", count(1));
pub(super) const MAX_BLOCK_MS: Key = key("max_block_ms", millis());

/// `[kafka.producer]`.
pub(super) const PRODUCER: Section = Section {
    name: "producer",
    path: "kafka.producer",
    env_prefix: "KAFKA_PRODUCER_",
    keys: &[
        ACKS_KEY,
        COMPRESSION,
        LINGER_MS,
        BATCH_SIZE,
        RETRIES,
        RETRY_BACKOFF_MS,
        REQUEST_TIMEOUT_MS,
        BATCH_BYTES,
        MAX_IN_FLIGHT,
        IDEMPOTENCE,
        DELIVERY_TIMEOUT_MS,
        BUFFER_BYTES,
        MAX_BLOCK_MS,
    ],
};

pub(super) const OFFSET_RESET: Key = key("offset_reset", Kind::Choice(OFFSET_RESETS));
pub(super) const UNKNOWN_TAG: Key = key("unknown_tag", Kind::Choice(UNKNOWN_TAGS));
pub(super) const SESSION_TIMEOUT_MS: Key = key("session_timeout_ms", positive_millis());
pub(super) const HEARTBEAT_INTERVAL_MS: Key = key("heartbeat_interval_ms", positive_millis());
pub(super) const REBALANCE_TIMEOUT_MS: Key = key("rebalance_timeout_ms", positive_millis());
pub(super) const MAX_POLL_INTERVAL_MS: Key = key("max_poll_interval_ms", positive_millis());
pub(super) const POLL_WAIT_MS: Key = key("poll_wait_ms", millis());
pub(super) const QUEUE_CAPACITY: Key = key("queue_capacity", count(1));
pub(super) const COMMIT_INTERVAL_MS: Key = key("commit_interval_ms", millis());
pub(super) const MAX_ATTEMPTS: Key = key("max_attempts", count(1));
pub(super) const BACKOFF_MS: Key = key("backoff_ms", millis());
pub(super) const MAX_BACKOFF_MS: Key = key("max_backoff_ms", millis());
pub(super) const MAX_RETRY_TIME_MS: Key = key("max_retry_time_ms", millis());
pub(super) const DEAD_LETTER_SUFFIX: Key = key("dead_letter_suffix", Kind::Str);
pub(super) const MAX_RECORD_BYTES: Key = key("max_record_bytes", count(1));
pub(super) const SHUTDOWN_TIMEOUT_MS: Key = key("shutdown_timeout_ms", millis());
pub(super) const FETCH_MIN_BYTES: Key = key("fetch_min_bytes", int32());
pub(super) const FETCH_MAX_BYTES: Key = key("fetch_max_bytes", int32());
pub(super) const FETCH_PARTITION_MAX_BYTES: Key = key("fetch_partition_max_bytes", int32());
pub(super) const FETCH_MAX_WAIT_MS: Key = key("fetch_max_wait_ms", positive_millis());
pub(super) const ISOLATION_LEVEL: Key = key("isolation_level", Kind::Choice(ISOLATION_LEVELS));
pub(super) const GROUP_INSTANCE_ID: Key = key("group_instance_id", Kind::Str);

/// `[kafka.consumer]`.
pub(super) const CONSUMER: Section = Section {
    name: "consumer",
    path: "kafka.consumer",
    env_prefix: "KAFKA_CONSUMER_",
    keys: &[
        OFFSET_RESET,
        UNKNOWN_TAG,
        SESSION_TIMEOUT_MS,
        HEARTBEAT_INTERVAL_MS,
        REBALANCE_TIMEOUT_MS,
        MAX_POLL_INTERVAL_MS,
        POLL_WAIT_MS,
        QUEUE_CAPACITY,
        COMMIT_INTERVAL_MS,
        MAX_ATTEMPTS,
        BACKOFF_MS,
        MAX_BACKOFF_MS,
        MAX_RETRY_TIME_MS,
        DEAD_LETTER_SUFFIX,
        MAX_RECORD_BYTES,
        SHUTDOWN_TIMEOUT_MS,
        FETCH_MIN_BYTES,
        FETCH_MAX_BYTES,
        FETCH_PARTITION_MAX_BYTES,
        FETCH_MAX_WAIT_MS,
        ISOLATION_LEVEL,
        GROUP_INSTANCE_ID,
    ],
};

/// `protocol`: how connections are made ([`SecurityProtocol`](super::SecurityProtocol)).
pub(super) const PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// `sasl_mechanism`: the names of [`SaslMechanism::as_str`], in the order of
/// [`SaslMechanism::ALL`].
pub(super) const SASL_MECHANISMS: &[&str] = &[
    SaslMechanism::Plain.as_str(),
    SaslMechanism::ScramSha256.as_str(),
    SaslMechanism::ScramSha512.as_str(),
    SaslMechanism::OAuthBearer.as_str(),
];

pub(super) const PROTOCOL: Key = key("protocol", Kind::Choice(PROTOCOLS));
pub(super) const SASL_MECHANISM: Key = key("sasl_mechanism", Kind::Choice(SASL_MECHANISMS));
pub(super) const USERNAME: Key = key("username", Kind::Str);
pub(super) const PASSWORD: Key = key("password", Kind::Secret);
pub(super) const PASSWORD_FILE: Key = key("password_file", Kind::Str);
pub(super) const TOKEN: Key = key("token", Kind::Secret);
pub(super) const TOKEN_FILE: Key = key("token_file", Kind::Str);
pub(super) const CA_FILE: Key = key("ca_file", Kind::Str);
pub(super) const CERT_FILE: Key = key("cert_file", Kind::Str);
pub(super) const KEY_FILE: Key = key("key_file", Kind::Str);
pub(super) const VERIFY_HOSTNAME: Key = key("verify_hostname", Kind::Bool);

/// `[kafka.security]`.
pub(super) const SECURITY: Section = Section {
    name: "security",
    path: "kafka.security",
    env_prefix: "KAFKA_SECURITY_",
    keys: &[
        PROTOCOL,
        SASL_MECHANISM,
        USERNAME,
        PASSWORD,
        PASSWORD_FILE,
        TOKEN,
        TOKEN_FILE,
        CA_FILE,
        CERT_FILE,
        KEY_FILE,
        VERIFY_HOSTNAME,
    ],
};

/// The sections with fixed keys, `[kafka]` first.
pub(super) const SECTIONS: &[&Section] = &[&KAFKA, &CONTROL, &PRODUCER, &CONSUMER, &SECURITY];

/// The tables inside `[kafka]`, in the order suggestions prefer.
pub(super) const SUBTABLES: &[&str] = &[
    TOPICS,
    CONTROL.name,
    PRODUCER.name,
    CONSUMER.name,
    SECURITY.name,
];

/// The section of a table inside `[kafka]`, except `topics`.
pub(super) fn subsection(name: &str) -> Option<&'static Section> {
    SECTIONS[1..].iter().copied().find(|s| s.name == name)
}

/// The environment variable that overrides the topic of `logical`: upper case, with every
/// character other than a letter or digit turned into `_`.
pub(super) fn topic_env_var(logical: &str) -> String {
    let mut var = String::from(TOPICS_ENV_PREFIX);
    var.extend(logical.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}
