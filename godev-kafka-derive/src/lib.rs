//! Macros of godev-kafka. Use them through the `godev-kafka` crate.
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Placeholder.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
