//! `#[handler]`: read the function and the settings ([`parse`]), then write the marker type
//! and its `Handler` impl beside the function ([`expand`]).

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::HandlerAttrs;
use crate::ctxt::Ctxt;

/// Expands `#[handler(args)]` on `item`. With errors, the function is kept as written and the
/// errors stand beside it.
pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = syn::Error::new(error.span(), "`#[handler]` goes on an `async fn`");
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    let cx = Ctxt::new();
    let attrs = HandlerAttrs::parse(&cx, args);
    let signature = parse::Signature::from_fn(&cx, &function);
    match cx.check() {
        Ok(()) => expand::handler_impl(&function, &attrs, &signature),
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote!(#errors #function)
        }
    }
}
