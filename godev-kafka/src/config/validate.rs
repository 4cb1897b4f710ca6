//! From the settings as read to a [`Config`]: defaults, required keys, the checks that span
//! more than one value's type (addresses, topic names, timeouts against each other), and the
//! keys the chosen backend cannot honour.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{Raw, Setting};
use super::schema::*;
use super::security::{SaslSettings, SecurityProtocol, SecuritySettings};
use super::tuning::{FetchTuning, MAX_IDEMPOTENT_IN_FLIGHT, ProducerTuning};
use super::{Client, Config, backends, error};
use crate::consumer::ConsumerSettings;
use crate::dispatch::UnknownTagPolicy;
use crate::event::Codec;
use crate::options::{self, Acks, Compression, Isolation, OffsetReset};
use crate::security::{SaslMechanism, Secret, TlsOptions};
use crate::{Error, Result};

/// Checks the settings and fills in the defaults.
pub(super) fn build(raw: Raw) -> Result<Config> {
    let brokers = raw.get(&KAFKA, &BROKERS).ok_or_else(|| {
        error(
            KAFKA.dotted(&BROKERS),
            format!(
                "missing; add `brokers = [\"host:port\"]` to [kafka] or set {}",
                KAFKA.env_var(&BROKERS)
            ),
        )
    })?;
    check_brokers(&brokers.name, brokers.list())?;

    let group_id = raw.get(&KAFKA, &GROUP_ID).ok_or_else(|| {
        error(
            KAFKA.dotted(&GROUP_ID),
            format!(
                "missing; add `group_id = \"...\"` to [kafka] or set {}",
                KAFKA.env_var(&GROUP_ID)
            ),
        )
    })?;
    non_empty(group_id)?;

    let source = raw.get(&KAFKA, &SOURCE);
    if let Some(source) = source {
        non_empty(source)?;
    }

    let mut topics = std::collections::BTreeMap::new();
    for (logical, setting) in &raw.topics {
        check_topic(setting.str()).map_err(|message| error(&setting.name, message))?;
        topics.insert(logical.clone(), setting.str().to_owned());
    }

    let enabled = |key: &Key| raw.get(&CONTROL, key).is_none_or(Setting::bool);
    let client = client(&raw)?;

    let config = Config {
        brokers: brokers.list().to_vec(),
        group_id: group_id.str().to_owned(),
        client,
        codec: match choice(&raw, &KAFKA, &CODEC) {
            None | Some("cloudevents") => Codec::CloudEvents,
            Some("tagged") => Codec::Tagged,
            Some(other) => unreachable!("codec `{other}` passed the schema"),
        },
        source: source
            .map_or(super::DEFAULT_SOURCE, Setting::str)
            .to_owned(),
        topics,
        producer_enabled: enabled(&PRODUCER_ENABLED),
        consumer_enabled: enabled(&CONSUMER_ENABLED),
        producer: producer(&raw)?,
        fetch: fetch(&raw),
        consumer: consumer(&raw)?,
        unknown_tag: match choice(&raw, &CONSUMER, &UNKNOWN_TAG) {
            None | Some("skip") => UnknownTagPolicy::Skip,
            Some("dead_letter") => UnknownTagPolicy::DeadLetter,
            Some("fail") => UnknownTagPolicy::Fail,
            Some(other) => unreachable!("unknown_tag `{other}` passed the schema"),
        },
        security: security(&raw)?,
        origins: origins(&raw),
    };
    // `auto` means `native` in a build that has it; in one without, the manager checks the
    // backend `auto` picked when it connects.
    let chosen = match client {
        Client::Auto if cfg!(feature = "native") => Client::Native,
        client => client,
    };
    backends::check(&config, chosen)?;
    Ok(config)
}

/// Where each `[kafka.producer]`, `[kafka.consumer]` and `[kafka.security]` key that was
/// set came from: dotted key to the name errors blame (the dotted key, or the variable).
fn origins(raw: &Raw) -> BTreeMap<String, String> {
    let mut origins = BTreeMap::new();
    for section in [&PRODUCER, &CONSUMER, &SECURITY] {
        for key in section.keys {
            if let Some(setting) = raw.get(section, key) {
                origins.insert(section.dotted(key), setting.name.clone());
            }
        }
    }
    origins
}

/// `kafka.client`; `confluent` is refused at start-up by a build without its feature.
fn client(raw: &Raw) -> Result<Client> {
    Ok(match choice(raw, &KAFKA, &CLIENT) {
        None | Some("kafka") => Client::Kafka,
        Some("confluent") => {
            if cfg!(not(feature = "confluent")) {
                let setting = raw.get(&KAFKA, &CLIENT).expect("the client was set");
                return Err(error(
                    &setting.name,
                    "`confluent` is not in this build: enable the cargo feature `confluent` \
                     of godev-kafka, or use `kafka` for brokers before Kafka 4",
                ));
            }
            Client::Confluent
        }
        Some("native") => {
            if cfg!(not(feature = "native")) {
                let setting = raw.get(&KAFKA, &CLIENT).expect("the client was set");
                return Err(error(
                    &setting.name,
                    "`native` is not in this build: enable the cargo feature `native` of \
                     godev-kafka",
                ));
            }
            Client::Native
        }
        Some("auto") => Client::Auto,
        Some("memory") => Client::Memory,
        Some(other) => unreachable!("client `{other}` passed the schema"),
    })
}

fn choice<'r>(raw: &'r Raw, section: &Section, key: &Key) -> Option<&'r str> {
    raw.get(section, key).map(Setting::str)
}

fn millis(raw: &Raw, section: &Section, key: &Key) -> Option<Duration> {
    raw.get(section, key)
        .map(|s| Duration::from_millis(s.int()))
}

fn count(raw: &Raw, section: &Section, key: &Key) -> Option<usize> {
    // The schema caps counts at u32::MAX.
    raw.get(section, key).map(|s| s.int() as usize)
}

fn int32(raw: &Raw, section: &Section, key: &Key) -> Option<i32> {
    // The schema caps these at i32::MAX.
    raw.get(section, key).map(|s| s.int() as i32)
}

/// The name errors give `key` of `section`: as it was set, else the dotted key.
fn name(raw: &Raw, section: &Section, key: &Key) -> String {
    raw.get(section, key)
        .map_or_else(|| section.dotted(key), |s| s.name.clone())
}

fn producer(raw: &Raw) -> Result<ProducerTuning> {
    let p = &PRODUCER;
    let tuning = ProducerTuning {
        acks: choice(raw, p, &ACKS_KEY).map(|acks| match acks {
            "all" => Acks::All,
            "one" => Acks::One,
            "none" => Acks::None,
            other => unreachable!("acks `{other}` passed the schema"),
        }),
        compression: choice(raw, p, &COMPRESSION).map(|c| {
            Compression::from_name(c)
                .unwrap_or_else(|| unreachable!("compression `{c}` passed the schema"))
        }),
        linger: millis(raw, p, &LINGER_MS),
        batch_size: count(raw, p, &BATCH_SIZE),
        batch_bytes: count(raw, p, &BATCH_BYTES),
        max_in_flight: count(raw, p, &MAX_IN_FLIGHT),
        idempotence: raw.get(p, &IDEMPOTENCE).map(Setting::bool),
        retry_backoff: millis(raw, p, &RETRY_BACKOFF_MS),
        request_timeout: millis(raw, p, &REQUEST_TIMEOUT_MS),
        delivery_timeout: millis(raw, p, &DELIVERY_TIMEOUT_MS),
        buffer_bytes: count(raw, p, &BUFFER_BYTES),
        max_block: millis(raw, p, &MAX_BLOCK_MS),
    };

    if let Some(idempotence) = raw.get(p, &IDEMPOTENCE).filter(|s| s.bool()) {
        let idempotence = &idempotence.name;
        if let Some(acks) = raw.get(p, &ACKS_KEY).filter(|s| s.str() != "all") {
            return Err(error(
                idempotence,
                format!(
                    "an idempotent producer needs `{}` = \"all\", found \"{}\"; set it to \"all\", \
                     or `{idempotence}` to false",
                    acks.name,
                    acks.str()
                ),
            ));
        }
        if let Some(n) = tuning
            .max_in_flight
            .filter(|&n| n > MAX_IDEMPOTENT_IN_FLIGHT)
        {
            return Err(error(
                name(raw, p, &MAX_IN_FLIGHT),
                format!(
                    "must be at most {MAX_IDEMPOTENT_IN_FLIGHT} with `{idempotence}` = true (the \
                     broker deduplicates a producer's last {MAX_IDEMPOTENT_IN_FLIGHT} batches), \
                     found {n}; lower it, or set `{idempotence}` to false"
                ),
            ));
        }
    }

    if let Some(delivery) = raw.get(p, &DELIVERY_TIMEOUT_MS) {
        let linger = tuning.linger.unwrap_or(options::DEFAULT_LINGER).as_millis();
        let request = tuning
            .request_timeout
            .unwrap_or(options::DEFAULT_REQUEST_TIMEOUT)
            .as_millis();
        let found = u128::from(delivery.int());
        if found < linger + request {
            return Err(error(
                &delivery.name,
                format!(
                    "must be at least `{}` + `{}` ({linger} + {request} = {}), found {found}",
                    name(raw, p, &LINGER_MS),
                    name(raw, p, &REQUEST_TIMEOUT_MS),
                    linger + request
                ),
            ));
        }
    }
    Ok(tuning)
}

fn fetch(raw: &Raw) -> FetchTuning {
    let c = &CONSUMER;
    FetchTuning {
        min_bytes: int32(raw, c, &FETCH_MIN_BYTES),
        max_bytes: int32(raw, c, &FETCH_MAX_BYTES),
        partition_max_bytes: int32(raw, c, &FETCH_PARTITION_MAX_BYTES),
        max_wait: millis(raw, c, &FETCH_MAX_WAIT_MS),
        isolation: choice(raw, c, &ISOLATION_LEVEL).map_or(Isolation::default(), |level| {
            Isolation::from_name(level)
                .unwrap_or_else(|| unreachable!("isolation_level `{level}` passed the schema"))
        }),
    }
}

fn consumer(raw: &Raw) -> Result<ConsumerSettings> {
    let mut settings = ConsumerSettings::default();
    let c = &CONSUMER;
    match choice(raw, c, &OFFSET_RESET) {
        None => {}
        Some("earliest") => settings.offset_reset = OffsetReset::Earliest,
        Some("latest") => settings.offset_reset = OffsetReset::Latest,
        Some(other) => unreachable!("offset_reset `{other}` passed the schema"),
    }
    let set = |target: &mut Duration, key: &Key| {
        if let Some(d) = millis(raw, c, key) {
            *target = d;
        }
    };
    set(&mut settings.session_timeout, &SESSION_TIMEOUT_MS);
    set(&mut settings.heartbeat_interval, &HEARTBEAT_INTERVAL_MS);
    set(&mut settings.rebalance_timeout, &REBALANCE_TIMEOUT_MS);
    set(&mut settings.max_poll_interval, &MAX_POLL_INTERVAL_MS);
    set(&mut settings.poll_wait, &POLL_WAIT_MS);
    set(&mut settings.commit_interval, &COMMIT_INTERVAL_MS);
    set(&mut settings.backoff, &BACKOFF_MS);
    set(&mut settings.max_backoff, &MAX_BACKOFF_MS);
    set(&mut settings.max_retry_time, &MAX_RETRY_TIME_MS);
    set(&mut settings.shutdown_timeout, &SHUTDOWN_TIMEOUT_MS);
    if let Some(n) = count(raw, c, &QUEUE_CAPACITY) {
        settings.queue_capacity = n;
    }
    if let Some(n) = count(raw, c, &MAX_RECORD_BYTES) {
        settings.max_record_bytes = n;
    }
    if let Some(s) = raw.get(c, &MAX_ATTEMPTS) {
        settings.max_attempts = s.int() as u32;
    }
    if let Some(s) = raw.get(c, &DEAD_LETTER_SUFFIX) {
        check_suffix(s.str()).map_err(|message| error(&s.name, message))?;
        settings.dead_letter_suffix = s.str().to_owned();
    }
    if let Some(s) = raw.get(c, &GROUP_INSTANCE_ID) {
        non_empty(s)?;
        settings.group_instance_id = Some(s.str().to_owned());
    }

    if settings.heartbeat_interval >= settings.session_timeout {
        let heartbeat = settings.heartbeat_interval.as_millis();
        let session = settings.session_timeout.as_millis();
        let name = |key: &Key| name(raw, c, key);
        return Err(match raw.get(c, &HEARTBEAT_INTERVAL_MS) {
            Some(set) => error(
                &set.name,
                format!(
                    "must be less than `{}` ({session}), found {heartbeat}; a third of it is usual",
                    name(&SESSION_TIMEOUT_MS)
                ),
            ),
            None => error(
                name(&SESSION_TIMEOUT_MS),
                format!(
                    "must be greater than `{}` ({heartbeat}), found {session}",
                    name(&HEARTBEAT_INTERVAL_MS)
                ),
            ),
        });
    }
    check_shutdown(raw, &settings)?;
    Ok(settings)
}

/// `shutdown_timeout_ms` must end [`ConsumerSettings::SHUTDOWN_MARGIN`] before
/// `rebalance_timeout_ms`. The error blames the shutdown timeout when it was set and can be
/// lowered to fit, else the rebalance timeout.
fn check_shutdown(raw: &Raw, settings: &ConsumerSettings) -> Result<()> {
    if settings.shutdown_fits_rebalance() {
        return Ok(());
    }
    let c = &CONSUMER;
    let shutdown = settings.shutdown_timeout.as_millis();
    let rebalance = settings.rebalance_timeout.as_millis();
    let margin = ConsumerSettings::SHUTDOWN_MARGIN.as_millis();
    let why = "the drain must end before the rebalance deadline evicts the member";
    let shutdown_name = name(raw, c, &SHUTDOWN_TIMEOUT_MS);
    let rebalance_name = name(raw, c, &REBALANCE_TIMEOUT_MS);
    if raw.get(c, &SHUTDOWN_TIMEOUT_MS).is_some() && rebalance >= margin {
        return Err(error(
            &shutdown_name,
            format!(
                "must be at most `{rebalance_name}` minus {margin} ({rebalance} - {margin} = {}), \
                 found {shutdown}: {why}; lower it, or raise `{rebalance_name}` to at least {}",
                rebalance - margin,
                shutdown + margin
            ),
        ));
    }
    Err(error(
        &rebalance_name,
        format!(
            "must be at least `{shutdown_name}` plus {margin} ({shutdown} + {margin} = {}), found \
             {rebalance}: {why}; raise it, or lower `{shutdown_name}`",
            shutdown + margin
        ),
    ))
}

/// The `[kafka.security]` keys: the protocol decides which other keys mean something, and a
/// key set that means nothing with it is an error, as is a credential or a file the chosen
/// protocol and mechanism need and do not have. Files are read (secrets) or opened (TLS
/// files) now, so that a wrong path fails at start-up. No error shows a secret: they name
/// the key, and a file's path, never what it holds.
fn security(raw: &Raw) -> Result<SecuritySettings> {
    let s = &SECURITY;
    let protocol = choice(raw, s, &PROTOCOL).map_or(SecurityProtocol::default(), |p| {
        SecurityProtocol::from_name(p)
            .unwrap_or_else(|| unreachable!("protocol `{p}` passed the schema"))
    });
    let protocol_name = name(raw, s, &PROTOCOL);
    // `kafka.security.protocol` = "ssl", as the config named it.
    let protocol_is = format!("`{protocol_name}` = \"{protocol}\"");
    let pointless = |key: &Key, what: &str, protocols: &str| -> Result<()> {
        match raw.get(s, key) {
            Some(set) => Err(error(
                &set.name,
                format!(
                    "has no effect with {protocol_is}: only {protocols} {what}; set \
                     `{protocol_name}` to one of those, or remove this key"
                ),
            )),
            None => Ok(()),
        }
    };

    let sasl_keys = [
        &SASL_MECHANISM,
        &USERNAME,
        &PASSWORD,
        &PASSWORD_FILE,
        &TOKEN,
        &TOKEN_FILE,
    ];
    let sasl = if protocol.uses_sasl() {
        Some(sasl(raw, &protocol_is)?)
    } else {
        for key in sasl_keys {
            pointless(
                key,
                "authenticate with SASL",
                "`sasl_plaintext` and `sasl_ssl`",
            )?;
        }
        None
    };

    let tls = if protocol.uses_tls() {
        Some(tls(raw)?)
    } else {
        for key in [&CA_FILE, &CERT_FILE, &KEY_FILE, &VERIFY_HOSTNAME] {
            pointless(key, "use TLS", "`ssl` and `sasl_ssl`")?;
        }
        None
    };
    Ok(SecuritySettings {
        protocol,
        tls,
        sasl,
    })
}

/// The SASL keys of a protocol that uses SASL (`protocol_is` names it for errors).
fn sasl(raw: &Raw, protocol_is: &str) -> Result<SaslSettings> {
    let s = &SECURITY;
    let mechanism = raw.get(s, &SASL_MECHANISM).ok_or_else(|| {
        let others = SASL_MECHANISMS[1..]
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        error(
            s.dotted(&SASL_MECHANISM),
            format!(
                "missing: {protocol_is} needs a SASL mechanism; add `sasl_mechanism = \"{}\"` \
                 (or {others}) to [kafka.security] or set {}",
                SASL_MECHANISMS[0],
                s.env_var(&SASL_MECHANISM)
            ),
        )
    })?;
    let kind = SaslMechanism::from_name(mechanism.str())
        .unwrap_or_else(|| unreachable!("sasl_mechanism `{}` passed the schema", mechanism.str()));
    // `kafka.security.sasl_mechanism` = "plain", as the config named it.
    let mechanism_is = format!("`{}` = \"{}\"", mechanism.name, kind.as_str());
    let refuse = |keys: &[&Key], how: &str, instead: &str| -> Result<()> {
        match keys.iter().find_map(|key| raw.get(s, key)) {
            Some(set) => Err(error(
                &set.name,
                format!(
                    "has no effect with {mechanism_is}, which authenticates with {how}; remove \
                     this key, or set `{}` to {instead}",
                    mechanism.name
                ),
            )),
            None => Ok(()),
        }
    };
    if kind == SaslMechanism::OAuthBearer {
        refuse(
            &[&USERNAME, &PASSWORD, &PASSWORD_FILE],
            "a token (`token` or `token_file`)",
            "\"plain\", \"scram-sha-256\" or \"scram-sha-512\"",
        )?;
        let token = secret(raw, &TOKEN, &TOKEN_FILE)?.ok_or_else(|| {
            error(
                s.dotted(&TOKEN),
                format!(
                    "missing: {mechanism_is} needs a token; set {}, or add `token_file = \
                     \"/path/to/token\"` to [kafka.security] (a program that fetches its tokens \
                     gives a `TokenProvider` in `NativeOptions::sasl` instead)",
                    s.env_var(&TOKEN)
                ),
            )
        })?;
        return Ok(SaslSettings {
            mechanism: kind,
            username: None,
            password: None,
            token: Some(token),
        });
    }
    refuse(
        &[&TOKEN, &TOKEN_FILE],
        "`username` and `password`",
        "\"oauthbearer\"",
    )?;
    let username = raw.get(s, &USERNAME).ok_or_else(|| {
        error(
            s.dotted(&USERNAME),
            format!(
                "missing: {mechanism_is} needs a user name; add `username = \"...\"` to \
                 [kafka.security] or set {}",
                s.env_var(&USERNAME)
            ),
        )
    })?;
    non_empty(username)?;
    let password = secret(raw, &PASSWORD, &PASSWORD_FILE)?.ok_or_else(|| {
        error(
            s.dotted(&PASSWORD),
            format!(
                "missing: {mechanism_is} needs a password; set {}, or add `password_file = \
                 \"/path/to/password\"` to [kafka.security]",
                s.env_var(&PASSWORD)
            ),
        )
    })?;
    Ok(SaslSettings {
        mechanism: kind,
        username: Some(username.str().to_owned()),
        password: Some(password),
        token: None,
    })
}

/// The secret `key` holds, or the one in the file `file_key` names (read now, its trailing
/// newline trimmed); `None` if neither is set. Both set is an error, and so is an empty
/// secret. No message shows the secret.
fn secret(raw: &Raw, key: &Key, file_key: &Key) -> Result<Option<Secret>> {
    let s = &SECURITY;
    match (raw.get(s, key), raw.get(s, file_key)) {
        (Some(value), Some(file)) => Err(error(
            &file.name,
            format!(
                "is set, and so is `{}`; keep one of the two: the {} or the file that holds it",
                value.name, key.name
            ),
        )),
        (Some(value), None) => {
            if value.secret().expose().is_empty() {
                return Err(error(&value.name, "must not be empty"));
            }
            Ok(Some(value.secret().clone()))
        }
        (None, Some(file)) => {
            non_empty(file)?;
            let path = file.str();
            let text = std::fs::read_to_string(path).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    "; create it or fix the path"
                } else {
                    ""
                };
                error(&file.name, format!("cannot read `{path}`: {e}{hint}"))
            })?;
            let trimmed = text.trim_end_matches(['\r', '\n']);
            if trimmed.is_empty() {
                return Err(error(
                    &file.name,
                    format!("`{path}` is empty; write the {} in it", key.name),
                ));
            }
            Ok(Some(Secret::new(trimmed)))
        }
        (None, None) => Ok(None),
    }
}

/// The TLS keys of a protocol that uses TLS. A client certificate needs its key and the
/// other way round; every file named must be one this process can open.
fn tls(raw: &Raw) -> Result<TlsOptions> {
    let s = &SECURITY;
    match (raw.get(s, &CERT_FILE), raw.get(s, &KEY_FILE)) {
        (Some(cert), None) => {
            return Err(error(
                s.dotted(&KEY_FILE),
                format!(
                    "missing: `{}` is set, and mutual TLS needs the client's private key too; \
                     add `key_file = \"...\"` to [kafka.security] or set {}, or remove `{}`",
                    cert.name,
                    s.env_var(&KEY_FILE),
                    cert.name
                ),
            ));
        }
        (None, Some(key)) => {
            return Err(error(
                s.dotted(&CERT_FILE),
                format!(
                    "missing: `{}` is set, and mutual TLS needs the client's certificate too; \
                     add `cert_file = \"...\"` to [kafka.security] or set {}, or remove `{}`",
                    key.name,
                    s.env_var(&CERT_FILE),
                    key.name
                ),
            ));
        }
        _ => {}
    }
    let file = |key: &Key| raw.get(s, key).map(readable_file).transpose();
    Ok(TlsOptions {
        ca_file: file(&CA_FILE)?,
        cert_file: file(&CERT_FILE)?,
        key_file: file(&KEY_FILE)?,
        verify_hostname: raw.get(s, &VERIFY_HOSTNAME).is_none_or(Setting::bool),
    })
}

/// The path `setting` names, if it is a file this process can open for reading.
fn readable_file(setting: &Setting) -> Result<PathBuf> {
    non_empty(setting)?;
    let path = setting.str();
    let cannot = |e: std::io::Error| {
        error(
            &setting.name,
            format!("cannot read `{path}`: {e}; fix the path"),
        )
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(error(
            &setting.name,
            format!("`{path}` is not a file; name the PEM file itself"),
        ));
    }
    Ok(PathBuf::from(path))
}

fn non_empty(setting: &Setting) -> Result<()> {
    if setting.str().trim().is_empty() {
        return Err(error(&setting.name, "must not be empty"));
    }
    Ok(())
}

/// Checks a broker list, naming the list (`kafka.brokers` or `KAFKA_BROKERS`) in errors.
pub(super) fn check_brokers(name: &str, brokers: &[String]) -> Result<(), Error> {
    if brokers.is_empty() {
        return Err(error(
            name,
            format!("`{name}` is empty; list at least one broker as host:port"),
        ));
    }
    for broker in brokers {
        check_broker(broker).map_err(|message| error(name, message))?;
    }
    Ok(())
}

/// Checks one `host:port` (IPv6 hosts in brackets).
fn check_broker(addr: &str) -> Result<(), String> {
    let not_host_port = || format!("`{addr}` is not host:port");
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => {
            let (ip, port) = rest.split_once("]:").ok_or_else(not_host_port)?;
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err(format!("`{addr}`: `{ip}` is not an IPv6 address"));
            }
            (ip, port)
        }
        None => addr.rsplit_once(':').ok_or_else(not_host_port)?,
    };
    if !addr.starts_with('[') {
        if host.parse::<Ipv6Addr>().is_ok() {
            return Err(format!(
                "`{addr}` is not host:port; write an IPv6 address in brackets, as in `[::1]:9092`"
            ));
        }
        if host.is_empty() {
            return Err(format!("`{addr}` has no host; write host:port"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(format!(
                "`{addr}`: host `{host}` may only contain letters, digits, `.`, `-` and `_`"
            ));
        }
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "`{addr}`: port must be a number from 1 to 65535, found `{port}`"
        )),
    }
}

/// The characters Kafka allows in a topic name.
fn topic_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("must not be empty".into());
    }
    if topic == "." || topic == ".." {
        return Err(format!(
            "`{topic}` is not a valid Kafka topic name; `.` and `..` are reserved"
        ));
    }
    if topic.len() > 249 || !topic_chars(topic) {
        return Err(format!(
            "`{topic}` is not a valid Kafka topic name; use 1 to 249 letters, digits, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

fn check_suffix(suffix: &str) -> Result<(), String> {
    if suffix.is_empty() {
        return Err("must not be empty".into());
    }
    if !topic_chars(suffix) {
        return Err(format!(
            "`{suffix}` may only contain letters, digits, `.`, `_` or `-` (it ends topic names)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        for ok in [
            "127.0.0.1:9092",
            "kafka-1.example.com:9093",
            "[::1]:9092",
            "broker_1:1",
            "h:65535",
        ] {
            assert_eq!(check_broker(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("localhost", "`localhost` is not host:port"),
            ("", "`` is not host:port"),
            (":9092", "`:9092` has no host; write host:port"),
            (
                "localhost:0",
                "`localhost:0`: port must be a number from 1 to 65535, found `0`",
            ),
            (
                "localhost:65536",
                "`localhost:65536`: port must be a number from 1 to 65535, found `65536`",
            ),
            (
                "localhost:+80",
                "`localhost:+80`: port must be a number from 1 to 65535, found `+80`",
            ),
            (
                "localhost:",
                "`localhost:`: port must be a number from 1 to 65535, found ``",
            ),
            (
                "::1:9092",
                "`::1:9092` is not host:port; write an IPv6 address in brackets, as in `[::1]:9092`",
            ),
            ("[::1]", "`[::1]` is not host:port"),
            ("[zz]:9092", "`[zz]:9092`: `zz` is not an IPv6 address"),
            (
                "[::1]:0",
                "`[::1]:0`: port must be a number from 1 to 65535, found `0`",
            ),
            (
                "kafka://b:9092",
                "`kafka://b:9092`: host `kafka://b` may only contain letters, digits, `.`, `-` and `_`",
            ),
        ];
        for (addr, message) in cases {
            assert_eq!(check_broker(addr), Err(message.to_owned()), "{addr}");
        }
    }

    #[test]
    fn topic_names() {
        for ok in ["user-events", "a", "A.b_c-9", &"x".repeat(249)] {
            assert_eq!(check_topic(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_topic(""), Err("must not be empty".to_owned()));
        assert_eq!(
            check_topic(".."),
            Err("`..` is not a valid Kafka topic name; `.` and `..` are reserved".to_owned())
        );
        let long = "x".repeat(250);
        assert_eq!(
            check_topic(&long),
            Err(format!(
                "`{long}` is not a valid Kafka topic name; use 1 to 249 letters, digits, `.`, `_` or `-`"
            ))
        );
    }
}
