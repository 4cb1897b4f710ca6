//! A dead-letter record value (`consumer::DeadLetter`, read back by replay): decoding and
//! recovering the original key and value never panic, and a dead letter that decodes
//! serializes and decodes to the same dead letter.
#![no_main]

use godev_kafka::consumer::DeadLetter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(letter) = serde_json::from_slice::<DeadLetter>(bytes) else {
        return;
    };
    let key = letter.original_key();
    let value = letter.original_value();
    if let Some(text) = &letter.key {
        assert_eq!(
            key.as_deref(),
            Some(text.as_bytes()),
            "a UTF-8 key comes back as is"
        );
    }
    if let Some(text) = &letter.value {
        assert_eq!(value, text.as_bytes(), "a UTF-8 value comes back as is");
    }
    let json = serde_json::to_vec(&letter).expect("a dead letter serializes");
    let again: DeadLetter = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{letter:?} serializes as {} which does not decode: {e}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(letter, again, "dead letter changed in a round trip");
    assert_eq!(again.original_key(), key);
    assert_eq!(again.original_value(), value);
});
