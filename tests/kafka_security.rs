//! The backends on secured brokers (issue #14). The `native` backend on Kafka 3.9 and 4:
//! produce and grouped consume over SASL_SSL with each of PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512 and OAUTHBEARER, over TLS alone and over mutual TLS; a consumer across
//! re-authentications; and the clear errors of a wrong password (with no reconnect storm),
//! an untrusted CA, a missing client certificate, a plaintext client on a TLS listener, and
//! a user without rights on the group or the topic. The `confluent` backend on Kafka 4: the
//! same with PLAIN, its only mechanism.
//!
//! The brokers are `dev/kafka start --security sasl_ssl --reauth-ms 10000` and
//! `dev/kafka start --security ssl --mtls`, one of each per version (`dev/test` starts them).
//!
//! Run: `cargo test -p godev-kit --features broker-tests,native,confluent --test kafka_security`
//! with `GODEV_KAFKA_SASL_SSL`, `GODEV_KAFKA4_SASL_SSL`, `GODEV_KAFKA_MTLS` and
//! `GODEV_KAFKA4_MTLS` naming the brokers' `client.env` files.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godev_kafka::transport::{SaslMechanism, SaslOptions, Secret, TlsOptions, Transport};
use godev_kafka::{Codec, Consumer, Context, Error, Event, HandlerError, KafkaCode, Producer};
use godev_kafka::{TopicMap, handler, testing};
use serde::{Deserialize, Serialize};
use support::Backend;
use support::secured::{Listener, Secured};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "payments", name = "payment.made", key = "id")]
struct PaymentMade {
    id: u32,
}

/// Topic → ids handled.
static HANDLED: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());

#[handler]
async fn on_payment(event: PaymentMade, ctx: Context) -> Result<(), HandlerError> {
    HANDLED
        .lock()
        .unwrap()
        .entry(ctx.topic().to_owned())
        .or_default()
        .push(event.id);
    Ok(())
}

fn handled(topic: &str) -> Vec<u32> {
    HANDLED
        .lock()
        .unwrap()
        .get(topic)
        .cloned()
        .unwrap_or_default()
}

/// The connection layer's debug lines, and the confluent crate's authenticator's, captured
/// for the whole process.
const CONNECTION_LOGS: &str = "godev_kafka::transport::connection=debug,\
                               confluent_kafka::common::security::authenticator=debug";

/// Captured connection-layer lines that mention `broker` and `needle`.
fn logged(broker: &str, needle: &str) -> usize {
    support::logs::logged(broker, needle).len()
}

/// Sends `ids` to a fresh topic through `transport`, consumes them in a group and checks
/// each arrived once.
async fn round_trip(
    backend: Backend,
    secured: &Secured,
    transport: Arc<dyn Transport>,
    what: &str,
) {
    let topic = testing::unique_name(&format!("secured-{what}"));
    testing::create_topic(&secured.internal, &topic, 3)
        .await
        .unwrap();
    let topics = TopicMap::from_iter([("payments", topic.as_str())]);
    let producer = Producer::with_transport(
        transport.clone(),
        topics.clone(),
        Codec::CloudEvents,
        "security-test",
    );
    for id in 0..30 {
        producer
            .send(&PaymentMade { id })
            .await
            .unwrap_or_else(|e| panic!("{what}: send {id}: {e}"));
    }
    let running = Consumer::builder_shared(transport, testing::unique_name("secured-group"))
        .topics(topics)
        .settings(backend.consumer_settings())
        .handler::<on_payment>()
        .build()
        .unwrap()
        .start();
    support::wait_until(
        &format!("{what}: 30 payments handled"),
        Duration::from_secs(60),
        || async { handled(&topic).len() >= 30 || running.has_stopped() },
    )
    .await;
    assert!(!running.has_stopped(), "{what}: the consumer stopped");
    let mut ids = handled(&topic);
    ids.sort_unstable();
    assert_eq!(ids, (0..30).collect::<Vec<_>>(), "{what}: each once");
    running.shutdown().await.unwrap();
}

on_backends!(
    native_3 => Native3,
    native_4 => Native4,
    #[cfg(feature = "confluent")] confluent_4 => Confluent;
    [
        every_sasl_mechanism_produces_and_consumes_over_tls,
        tls_alone_produces_and_consumes,
        mutual_tls_produces_and_consumes,
        without_a_client_certificate_mutual_tls_is_refused,
        a_consumer_keeps_consuming_across_re_authentications,
        a_wrong_password_fails_fast_naming_mechanism_and_user,
        an_untrusted_ca_fails_with_the_certificate_problem,
        a_plaintext_client_on_a_tls_listener_fails_clearly,
        a_user_without_rights_gets_typed_authorization_errors,
    ]
);

/// The SASL mechanisms `backend` speaks: every one on `native`, PLAIN on `confluent`.
fn mechanisms(backend: Backend) -> &'static [SaslMechanism] {
    match backend {
        #[cfg(feature = "confluent")]
        Backend::Confluent => &[SaslMechanism::Plain],
        _ => &[
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
            SaslMechanism::OAuthBearer,
        ],
    }
}

/// The error connecting gave; a panic if `backend` connected, or gave no answer in `within`.
async fn connect_error(
    backend: Backend,
    secured: &Secured,
    tls: Option<TlsOptions>,
    sasl: Option<SaslOptions>,
    within: Duration,
) -> Error {
    match tokio::time::timeout(within, secured.connect(backend, tls, sasl)).await {
        Ok(Err(e)) => e,
        Ok(Ok(_)) => panic!("{backend:?} connected"),
        Err(_) => panic!("{backend:?}: no answer within {within:?}"),
    }
}

async fn every_sasl_mechanism_produces_and_consumes_over_tls(backend: Backend) {
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    for &mechanism in mechanisms(backend) {
        let transport = secured
            .connect(
                backend,
                Some(secured.tls()),
                Some(secured.sasl(mechanism, "alice")),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", mechanism.kafka_name()));
        round_trip(backend, &secured, transport, mechanism.as_str()).await;
    }
}

/// Protocol `ssl` with no client certificate: the `--mtls` broker's TLS-only listener.
async fn tls_alone_produces_and_consumes(backend: Backend) {
    let mut secured = Secured::get(Listener::MutualTls, backend.kafka_version());
    assert!(
        !secured.tls_only.is_empty(),
        "{}: no tls_only_bootstrap (a broker from before dev/kafka had one: restart it)",
        secured.bootstrap
    );
    secured.bootstrap = secured.tls_only.clone();
    let transport = secured
        .connect(backend, Some(secured.tls()), None)
        .await
        .expect("connect with TLS alone");
    round_trip(backend, &secured, transport, "tls").await;
}

async fn mutual_tls_produces_and_consumes(backend: Backend) {
    let secured = Secured::get(Listener::MutualTls, backend.kafka_version());
    let transport = secured
        .connect(backend, Some(secured.mutual_tls()), None)
        .await
        .expect("connect with the client certificate");
    round_trip(backend, &secured, transport, "mtls").await;
}

async fn without_a_client_certificate_mutual_tls_is_refused(backend: Backend) {
    let secured = Secured::get(Listener::MutualTls, backend.kafka_version());
    let e = connect_error(
        backend,
        &secured,
        Some(secured.tls()),
        None,
        Duration::from_secs(10),
    )
    .await;
    let text = e.to_string();
    assert!(text.contains("BadCertificate"), "{text}");
    assert!(
        text.contains("client certificates"),
        "the fix is named: {text}"
    );
}

/// `connections.max.reauth.ms=10000`: over 35 s each connection's session ends three times;
/// the consumer must replace its connections before the broker cuts them, and never lose one.
async fn a_consumer_keeps_consuming_across_re_authentications(backend: Backend) {
    // The confluent crate logs through `log`; once per process, as the capture.
    tracing_log::LogTracer::init_with_filter(tracing_log::log::LevelFilter::Debug).ok();
    support::logs::capture_with(CONNECTION_LOGS);
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    // SCRAM-SHA-512 where the backend has it, else PLAIN.
    let mechanism = *mechanisms(backend).get(2).unwrap_or(&SaslMechanism::Plain);
    let transport = secured
        .connect(
            backend,
            Some(secured.tls()),
            Some(secured.sasl(mechanism, "alice")),
        )
        .await
        .unwrap();
    let topic = testing::unique_name("secured-reauth");
    testing::create_topic(&secured.internal, &topic, 1)
        .await
        .unwrap();
    let topics = TopicMap::from_iter([("payments", topic.as_str())]);
    let running = Consumer::builder_shared(transport.clone(), testing::unique_name("reauth"))
        .topics(topics.clone())
        .settings(backend.consumer_settings())
        .handler::<on_payment>()
        .build()
        .unwrap()
        .start();
    let producer = Producer::with_transport(transport, topics, Codec::CloudEvents, "reauth");
    let renewed_before = renewals(backend, &secured);
    let broken_before = logged(&secured.bootstrap, "connection broken");
    let started = Instant::now();
    let mut id = 0;
    // One payment every 500 ms for 35 s: each must be handled within 5 s of its send.
    while started.elapsed() < Duration::from_secs(35) {
        producer.send(&PaymentMade { id }).await.expect("send");
        let want = id;
        support::wait_until(
            &format!("payment {want} handled"),
            Duration::from_secs(5),
            || async { handled(&topic).contains(&want) },
        )
        .await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!running.has_stopped(), "the consumer stopped");
    running.shutdown().await.unwrap();
    let renewed = renewals(backend, &secured) - renewed_before;
    let broken = logged(&secured.bootstrap, "connection broken") - broken_before;
    // The fetch connection alone is renewed every 8.5 s (native; the confluent crate, as the
    // Java client, re-authenticates in band at 85-95% of the lifetime): at least 3 in 35 s.
    assert!(renewed >= 3, "{renewed} re-authentications in 35 s");
    // The native connection layer logs every broken connection (the crate has no such line;
    // a session it let lapse would end in a cut connection and a pause over 5 s above).
    assert_eq!(broken, 0, "{broken} connections were cut off");
    // Every authentication of the run was logged at debug, and not one line shows the
    // password.
    let password = secured.password("alice");
    let leaked = support::logs::logged("", password.expose());
    assert!(leaked.is_empty(), "the password is in the log: {leaked:?}");
    let mut ids = handled(&topic);
    ids.sort_unstable();
    assert_eq!(ids, (0..id).collect::<Vec<_>>(), "each once");
}

/// How many times `backend`'s connections to `secured` have re-authenticated: the native
/// connection layer's "re-authenticate" lines for this broker; the confluent crate's
/// "Finished re-authentication" lines (it does not name the broker: only this test's
/// confluent client runs long enough on a SASL_SSL broker to renew a session).
fn renewals(backend: Backend, secured: &Secured) -> usize {
    match backend {
        #[cfg(feature = "confluent")]
        Backend::Confluent => support::logs::logged("", "Finished re-authentication").len(),
        _ => logged(&secured.bootstrap, "re-authenticate"),
    }
}

async fn a_wrong_password_fails_fast_naming_mechanism_and_user(backend: Backend) {
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    // No other test of this binary logs in with a wrong password on this broker.
    let mut failed_before = secured.failed_sasl_logins();
    // The clients that log in at connect: the native backend's bootstrap connection; the
    // confluent backend's producer and admin client.
    let clients = match backend {
        #[cfg(feature = "confluent")]
        Backend::Confluent => 2,
        _ => 1,
    };
    let password_mechanisms = mechanisms(backend)
        .iter()
        .filter(|m| **m != SaslMechanism::OAuthBearer);
    for &mechanism in password_mechanisms {
        let sasl = SaslOptions::password(mechanism, "alice", Secret::new("not-the-password-7f3a"));
        let started = Instant::now();
        let e = connect_error(
            backend,
            &secured,
            Some(secured.tls()),
            Some(sasl),
            Duration::from_secs(10),
        )
        .await;
        let text = e.to_string();
        assert_eq!(
            e.kafka_code(),
            Some(KafkaCode::SASL_AUTHENTICATION_FAILED),
            "{text}"
        );
        assert!(text.contains(mechanism.kafka_name()), "{text}");
        assert!(text.contains("alice"), "{text}");
        assert!(!text.contains("not-the-password-7f3a"), "{text}");
        assert!(!e.is_retriable(), "{text}");
        assert!(started.elapsed() < Duration::from_secs(10));

        // One login per client reached the broker, and no retry follows. A client that
        // reconnected on this error would have tried again several times within 3 s: the
        // native connection layer's backoff starts at 50 ms and doubles to 1 s, the confluent
        // crate's (the Java client's) starts at 50 ms too, and kcat retries twice in 2 s.
        support::wait_until(
            &format!("the broker logs {mechanism:?}'s failed logins"),
            Duration::from_secs(10),
            || async { secured.failed_sasl_logins() >= failed_before + clients },
        )
        .await;
        let window = Instant::now() + Duration::from_secs(3);
        while Instant::now() < window {
            let failed = secured.failed_sasl_logins() - failed_before;
            assert_eq!(
                failed, clients,
                "{failed} failed logins with {mechanism:?} from {clients} clients: a reconnect storm"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        failed_before += clients;
    }
}

async fn an_untrusted_ca_fails_with_the_certificate_problem(backend: Backend) {
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    let mut tls = secured.tls();
    tls.ca_file = Some(secured.other_ca_file.clone());
    let sasl = secured.sasl(SaslMechanism::Plain, "alice");
    let e = connect_error(
        backend,
        &secured,
        Some(tls),
        Some(sasl),
        Duration::from_secs(10),
    )
    .await;
    let text = e.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}

async fn a_plaintext_client_on_a_tls_listener_fails_clearly(backend: Backend) {
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    let e = connect_error(backend, &secured, None, None, Duration::from_secs(15)).await;
    let text = e.to_string();
    assert!(text.contains("needs TLS"), "{text}");
}

async fn a_user_without_rights_gets_typed_authorization_errors(backend: Backend) {
    let secured = Secured::get(Listener::SaslSsl, backend.kafka_version());
    let topic = testing::unique_name("secured-acl");
    testing::create_topic(&secured.internal, &topic, 1)
        .await
        .unwrap();
    // SCRAM-SHA-256 where the backend has it, else PLAIN.
    let mechanism = *mechanisms(backend).get(1).unwrap_or(&SaslMechanism::Plain);
    let transport = secured
        .connect(
            backend,
            Some(secured.tls()),
            Some(secured.sasl(mechanism, "bob")),
        )
        .await
        .expect("bob authenticates");
    let producer = Producer::with_transport(
        transport.clone(),
        TopicMap::from_iter([("payments", topic.as_str())]),
        Codec::CloudEvents,
        "acl-test",
    );
    let e = producer
        .send(&PaymentMade { id: 7 })
        .await
        .expect_err("bob may not write");
    assert_eq!(
        e.kafka_code(),
        Some(KafkaCode::TOPIC_AUTHORIZATION_FAILED),
        "{e}"
    );
    let Error::Send { value, .. } = &e else {
        panic!("not Error::Send: {e}");
    };
    assert!(
        String::from_utf8_lossy(value).contains("\"id\":7"),
        "the record comes back"
    );

    // The native member is refused at JoinGroup; a KIP-848 member (confluent) joins locally
    // and is refused at its first heartbeat, which a poll sends.
    let options = backend.group_options(&testing::unique_name("acl-group"), &topic);
    let refused = async {
        let mut member = match transport.join(options).await {
            Ok(member) => member,
            Err(e) => return e,
        };
        loop {
            if let Err(e) = member.poll(Duration::from_millis(500)).await {
                return e;
            }
        }
    };
    let e = tokio::time::timeout(Duration::from_secs(30), refused)
        .await
        .expect("bob is refused within 30 s");
    assert_eq!(
        e.kafka_code(),
        Some(KafkaCode::GROUP_AUTHORIZATION_FAILED),
        "{e}"
    );
}
