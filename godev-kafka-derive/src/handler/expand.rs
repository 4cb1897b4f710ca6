//! The code `#[handler]` writes beside the function: a marker type named like it and the
//! marker's `Handler` impl, with the compile-time checks spanned at the user's tokens.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ItemFn;
use syn::spanned::Spanned;

use super::parse::Signature;
use crate::attr::{self, HandlerAttrs};

/// The function as written, the marker type, and its impl.
pub(crate) fn handler_impl(
    function: &ItemFn,
    attrs: &HandlerAttrs,
    signature: &Signature<'_>,
) -> TokenStream {
    let krate = attr::crate_or_default(attrs.krate.as_ref());
    let private = quote!(#krate::__private);
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let Some(event) = signature.event else {
        // The parse step reported the missing argument.
        return quote!(#function);
    };
    let options = options(attrs, &private);

    // The checks, each spanned at the token it is about. An event type that is not an
    // `Event` is reported by `type Event = ...` below, at the argument's type: the user's
    // tokens carry their own spans, so `__private::assert_event` would only repeat it.
    let (context_arg, ignore_context) = match signature.context {
        // A `Context` of another crate fails to type-check here, at the argument's type.
        Some(context) => (quote_spanned!(context.span()=> , __ctx), quote!()),
        None => (quote!(), quote!(let _ = __ctx;)),
    };
    let future = quote_spanned! {ident.span()=>
        #private::assert_send(#ident(__event #context_arg))
    };
    let result = quote_spanned! {signature.output_span=>
        #private::into_handler_result(__future.await)
    };
    let boxed = quote_spanned! {ident.span()=>
        #private::Box::pin(async move { #result })
    };

    quote! {
        #function

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}

        const _: () = {
            #[automatically_derived]
            impl #private::Handler for #ident {
                type Event = #event;
                const NAME: &'static str =
                    ::core::concat!(::core::module_path!(), "::", #name);
                const OPTIONS: #private::HandlerOptions = #options;

                fn call(
                    __event: Self::Event,
                    __ctx: #private::Context,
                ) -> #private::HandlerFuture {
                    #ignore_context
                    let __future = #future;
                    #boxed
                }
            }
        };
    }
}

/// `HandlerOptions::new()` with a builder call per setting.
fn options(attrs: &HandlerAttrs, private: &TokenStream) -> TokenStream {
    let mut options = quote!(#private::HandlerOptions::new());
    if let Some(group) = &attrs.group {
        let group = &group.value;
        options.extend(quote!(.group(#group)));
    }
    if let Some(max_attempts) = &attrs.max_attempts {
        let max_attempts = max_attempts.value;
        options.extend(quote!(.max_attempts(#max_attempts)));
    }
    if let Some(backoff_ms) = &attrs.backoff_ms {
        let backoff_ms = backoff_ms.value;
        options.extend(quote!(.backoff(#private::Duration::from_millis(#backoff_ms))));
    }
    if let Some(topic) = &attrs.dead_letter_topic {
        let topic = &topic.value;
        options.extend(quote!(.dead_letter_topic(#topic)));
    }
    options
}
