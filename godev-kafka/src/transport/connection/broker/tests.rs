//! The connection against fake brokers written here: each test scripts what its broker
//! reads and answers, byte by byte.

use bytes::BytesMut;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::*;
use crate::transport::connection::fake_broker::{fake_broker, read_request, write_response};

/// A HeartbeatResponse v0 body: the error code alone.
fn heartbeat(code: i16) -> [u8; 2] {
    code.to_be_bytes()
}

/// Every exchange of these tests ends well within this.
const DEADLINE: Duration = Duration::from_secs(10);

async fn connect(addr: &str) -> Connection {
    Connection::connect(
        addr,
        "connection-test",
        Duration::from_secs(5),
        &Security::default(),
    )
    .await
    .expect("the fake broker negotiates correctly")
}

async fn heartbeat_call(conn: &Connection, timeout: Option<Duration>) -> Result<i16> {
    let response: HeartbeatResponse = conn
        .call(ApiKey::Heartbeat, 0, &HeartbeatRequest::default(), timeout)
        .await?;
    Ok(response.error_code)
}

/// Holds the stream open until the client hangs up.
async fn until_hang_up(mut stream: TcpStream) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.ok();
}

/// A fake broker that negotiates correctly and then answers JoinGroup v5 with a `members`
/// count of `i32::MAX`: before the guard, that aborted the process.
#[tokio::test]
async fn a_hostile_count_from_the_broker_is_an_error_not_an_abort() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        let (key, correlation) = read_request(&mut stream).await.unwrap();
        assert_eq!(key, ApiKey::JoinGroup as i16);
        let mut body = BytesMut::new();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // throttle, error, generation
        for text in ["range", "member-0", "member-0"] {
            body.extend_from_slice(&(text.len() as i16).to_be_bytes());
            body.extend_from_slice(text.as_bytes());
        }
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        write_response(&mut stream, correlation, &body).await;
        until_hang_up(stream).await;
    })
    .await;

    let client = async {
        let conn = connect(&addr).await;
        assert_eq!(
            conn.broker_range(ApiKey::JoinGroup),
            Some(Range { min: 0, max: 5 })
        );
        let result: Result<JoinGroupResponse> = conn
            .call(ApiKey::JoinGroup, 5, &JoinGroupRequest::default(), None)
            .await;
        (result, conn.is_broken())
    };
    let (result, broken) = tokio::time::timeout(DEADLINE, client)
        .await
        .expect("the exchange finishes within 10 s");
    match result {
        Err(Error::Transport {
            operation,
            message,
            retriable,
        }) => {
            assert!(
                operation.starts_with("JoinGroup v5 to broker 127.0.0.1:"),
                "{operation}"
            );
            // The count follows 10 bytes of integers and strings of 2 + 5, 2 + 8, 2 + 8.
            assert!(
                message.contains(
                    "malformed JoinGroupResponse v5: array `members` declares 2147483647 \
                     elements at byte 37 but 4 bytes remain"
                ),
                "{message}"
            );
            assert!(retriable, "callers reconnect and retry");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(
        broken,
        "a connection that delivered a malformed response is not reused"
    );
    tokio::time::timeout(DEADLINE, broker)
        .await
        .expect("the fake broker sees the hang-up within 10 s")
        .expect("the fake broker's asserts hold");
}

/// Two requests in flight at once; the broker answers the second first. Each caller gets the
/// answer to its own request.
#[tokio::test]
async fn answers_in_any_order_reach_the_caller_that_asked() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        let (_, first) = read_request(&mut stream).await.unwrap();
        let (_, second) = read_request(&mut stream).await.unwrap();
        assert_ne!(first, second);
        write_response(&mut stream, second, &heartbeat(27)).await;
        write_response(&mut stream, first, &heartbeat(25)).await;
        until_hang_up(stream).await;
    })
    .await;
    let conn = connect(&addr).await;
    let both = async { tokio::join!(heartbeat_call(&conn, None), heartbeat_call(&conn, None)) };
    let (first, second) = tokio::time::timeout(DEADLINE, both)
        .await
        .expect("both answered within 10 s");
    // `join!` polls in order, so the first call queued its request first.
    assert_eq!(first.unwrap(), 25);
    assert_eq!(second.unwrap(), 27);
    assert!(!conn.is_broken());
    drop(conn);
    broker.await.expect("the fake broker's asserts hold");
}

/// Issue #15: a request that times out breaks the connection, as the Java client's does:
/// the calls in flight behind it fail at once instead of waiting out their own timeouts on a
/// broker that hangs, and the owner connects again. Before, the connection stayed usable and
/// a hung coordinator held every commit for a request timeout each.
#[tokio::test]
async fn a_timed_out_request_breaks_the_connection() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        // Reads both requests and answers neither: a broker that hangs.
        read_request(&mut stream).await.unwrap();
        read_request(&mut stream).await.unwrap();
        until_hang_up(stream).await;
    })
    .await;
    let conn = connect(&addr).await;
    let started = std::time::Instant::now();
    let (slow, behind) = tokio::join!(
        heartbeat_call(&conn, Some(Duration::from_millis(100))),
        heartbeat_call(&conn, None),
    );
    match slow {
        Err(Error::Transport {
            message, retriable, ..
        }) => {
            assert_eq!(message, "no response within 100ms");
            assert!(retriable);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let behind = behind.unwrap_err().to_string();
    assert!(behind.contains("no response within 100ms"), "{behind}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the call behind failed with the first, not after its own 5 s timeout: {:?}",
        started.elapsed()
    );
    assert!(conn.is_broken(), "a timeout breaks the connection");
    let again = heartbeat_call(&conn, None).await.unwrap_err().to_string();
    assert!(again.contains("connection is broken"), "{again}");
    drop(conn);
    broker.await.expect("the fake broker's asserts hold");
}

/// A caller that gives up on its own (its future dropped, as a `select!` does) leaves the
/// connection usable: the late answer is dropped, and the next request gets its own answer.
#[tokio::test]
async fn a_dropped_call_leaves_the_connection_usable() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        let (_, dropped) = read_request(&mut stream).await.unwrap();
        // The client gives up on `dropped` and asks again; only then does its answer come.
        let (_, next) = read_request(&mut stream).await.unwrap();
        write_response(&mut stream, dropped, &heartbeat(25)).await;
        write_response(&mut stream, next, &heartbeat(0)).await;
        until_hang_up(stream).await;
    })
    .await;
    let conn = connect(&addr).await;
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), heartbeat_call(&conn, None)).await;
    assert!(gave_up.is_err(), "no answer yet: {gave_up:?}");
    assert!(
        !conn.is_broken(),
        "a dropped call does not break the connection"
    );
    let next = tokio::time::timeout(DEADLINE, heartbeat_call(&conn, None))
        .await
        .expect("answered within 10 s");
    assert_eq!(next.unwrap(), 0, "the late answer went nowhere");
    assert!(!conn.is_broken());
    drop(conn);
    broker.await.expect("the fake broker's asserts hold");
}

/// An answer to an id nobody asked puts the stream in doubt: the call in flight fails, the
/// connection is broken, and a later call fails at once.
#[tokio::test]
async fn an_answer_nobody_asked_for_breaks_the_connection() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        let (_, asked) = read_request(&mut stream).await.unwrap();
        write_response(&mut stream, asked.wrapping_add(1000), &heartbeat(0)).await;
        until_hang_up(stream).await;
    })
    .await;
    let conn = connect(&addr).await;
    let result = tokio::time::timeout(DEADLINE, heartbeat_call(&conn, None))
        .await
        .expect("failed within 10 s");
    let message = match result {
        Err(Error::Transport {
            message, retriable, ..
        }) => {
            assert!(retriable);
            message
        }
        other => panic!("expected a transport error, got {other:?}"),
    };
    assert!(message.contains("which no request has"), "{message}");
    assert!(conn.is_broken());
    let again = heartbeat_call(&conn, None).await.unwrap_err().to_string();
    assert!(again.contains("connection is broken"), "{again}");
    drop(conn);
    broker.await.expect("the fake broker's asserts hold");
}

/// A broker that hangs up fails every request in flight with a retriable error at once,
/// not at its timeout.
#[tokio::test]
async fn a_hang_up_fails_the_requests_in_flight() {
    let (addr, broker) = fake_broker(|mut stream| async move {
        read_request(&mut stream).await.unwrap();
        read_request(&mut stream).await.unwrap();
        drop(stream);
    })
    .await;
    let conn = connect(&addr).await;
    let hour = Some(Duration::from_secs(3600));
    let both = async { tokio::join!(heartbeat_call(&conn, hour), heartbeat_call(&conn, hour)) };
    let (a, b) = tokio::time::timeout(DEADLINE, both)
        .await
        .expect("both failed within 10 s, not at their one-hour timeout");
    for result in [a, b] {
        let e = result.unwrap_err();
        assert!(e.is_retriable());
        assert!(
            e.to_string().contains("the broker closed the connection"),
            "{e}"
        );
    }
    assert!(conn.is_broken());
    broker.await.expect("the fake broker's asserts hold");
}
