//! RFC 3339 timestamps (`event::Timestamp`, the CloudEvents `time` and the dead letters'
//! `failed_at`): parsing never panics, and whatever parses displays as text that parses to
//! the same instant in the same offset; from JSON too.
#![no_main]

use godev_kafka::event::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(t) = text.parse::<Timestamp>() {
        let shown = t.to_string();
        let again: Timestamp = shown
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} parsed, but its display {shown:?} does not: {e}"));
        assert_eq!(
            t, again,
            "{text:?} displays as {shown:?}, which is another instant"
        );
        assert_eq!(again.to_string(), shown, "display is not stable");
    }
    // The same text as a JSON string, as serde reads it from an envelope.
    if let Ok(t) = serde_json::from_slice::<Timestamp>(bytes) {
        let json = serde_json::to_string(&t).expect("a timestamp serializes");
        let again: Timestamp = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{text:?} read as JSON, but {json} does not: {e}"));
        assert_eq!(
            t, again,
            "{text:?} serializes as {json}, which is another instant"
        );
    }
});
