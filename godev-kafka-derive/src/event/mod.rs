//! `#[derive(Event)]`: read the input ([`ast`]), check it ([`check`]), write the impl
//! ([`expand`]).

mod ast;
mod check;
mod expand;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

/// Expands `#[derive(Event)]` on `input`: the impl, or the errors next to a stub impl.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let container = ast::Container::from_ast(&cx, input);
    check::check(&cx, &container);
    match cx.check() {
        Ok(()) => expand::event_impl(&container),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::stub_impl(&container));
            out
        }
    }
}
