//! The handler function's signature, checked for the shape `#[handler]` can call:
//! `async fn name(event: E) -> Result<(), Err>` or `async fn name(event: E, ctx: Context) -> ...`.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::ctxt::Ctxt;

/// The type name the optional second argument must end with.
const CONTEXT: &str = "Context";

/// What the expansion needs from the function's signature.
pub(crate) struct Signature<'a> {
    /// The event argument's type.
    pub(crate) event: Option<&'a Type>,
    /// The context argument's type, when the function takes one.
    pub(crate) context: Option<&'a Type>,
    /// Where return-type errors are reported: the return type, or the argument list.
    pub(crate) output_span: Span,
}

impl<'a> Signature<'a> {
    /// Reads `function`'s signature, recording mistakes in `cx`.
    pub(crate) fn from_fn(cx: &Ctxt, function: &'a ItemFn) -> Self {
        let sig = &function.sig;
        if sig.asyncness.is_none() {
            cx.error_spanned_by(sig.fn_token, "`#[handler]` functions must be `async`");
        }
        if !sig.generics.params.is_empty() {
            cx.error_spanned_by(
                &sig.generics.params,
                "`#[handler]` does not support generic parameters",
            );
        } else if let Some(where_clause) = &sig.generics.where_clause {
            cx.error_spanned_by(
                where_clause,
                "`#[handler]` does not support generic parameters",
            );
        }

        let mut event = None;
        let mut context = None;
        let mut index = 0;
        for input in &sig.inputs {
            let ty = match input {
                FnArg::Receiver(receiver) => {
                    cx.error_spanned_by(
                        receiver,
                        "`#[handler]` functions cannot take `self`: write a free `async fn`",
                    );
                    continue;
                }
                FnArg::Typed(typed) => &*typed.ty,
            };
            index += 1;
            if let Type::ImplTrait(_) = ty {
                cx.error_spanned_by(ty, "`#[handler]` does not support generic parameters");
                continue;
            }
            match index {
                1 => event = Some(ty),
                2 if ends_with_context(ty) => context = Some(ty),
                2 => cx.error_spanned_by(
                    ty,
                    "the second argument of a `#[handler]` must be the `Context`",
                ),
                _ => cx.error_spanned_by(
                    input,
                    "`#[handler]` functions take at most two arguments: the event and a `Context`",
                ),
            }
        }
        if sig.inputs.is_empty() {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.join(),
                "`#[handler]` functions take the event as their first argument, as in `async fn on_event(event: MyEvent)`",
            ));
        }

        let output_span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => {
                let close = sig.paren_token.span.close();
                cx.syn_error(syn::Error::new(
                    close,
                    "`#[handler]` functions return `Result<(), E>`, where `E` converts into `HandlerError`",
                ));
                close
            }
        };
        Signature {
            event,
            context,
            output_span,
        }
    }
}

/// Whether `ty` is a path whose last segment is `Context`; the expansion then checks that it
/// is the framework's.
fn ends_with_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == CONTEXT && segment.arguments.is_none()),
        _ => false,
    }
}
