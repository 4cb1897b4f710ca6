//! Compile-time behaviour of the macros, with the compiler's messages kept as snapshots.
//!
//! Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p godev-kafka-derive --test ui`, then read every `.stderr`:
//! each error must point at the user's token, not at the macro.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
