//! The code `#[derive(Event)]` writes: an `impl Event` inside `const _: () = { ... };`, every
//! path absolute through the runtime crate's `__private` module.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use super::ast::{Container, Data, Shape, Variant};
use crate::attr::{self, Setting};
use crate::respan::respan;

/// The impl for a container that passed the checks.
pub(crate) fn event_impl(container: &Container<'_>) -> TokenStream {
    let krate = attr::crate_or_default(container.attrs.krate.as_ref());
    let private = quote!(#krate::__private);
    let ident = container.ident;
    let topic = container.attrs.topic.as_ref().map(|topic| &topic.value);

    let body = match &container.data {
        Data::Struct(shape) => struct_items(container, shape, &private),
        Data::Enum(variants) => enum_items(container, variants, &private, &krate),
        Data::Union(_) => unreachable!("unions are refused by the checks"),
    };

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #private::Event for #ident {
                const TOPIC: &'static str = #topic;
                #body
            }
        };
    }
}

/// An impl with no behaviour, emitted next to the errors so that code using the type as an
/// `Event` does not add errors of its own.
pub(crate) fn stub_impl(container: &Container<'_>) -> TokenStream {
    let generics = &container.original.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        // An impl for a generic type would bring errors of its own.
        return TokenStream::new();
    }
    let krate = attr::crate_or_default(container.attrs.krate.as_ref());
    let private = quote!(#krate::__private);
    let ident = container.ident;
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #private::Event for #ident {
                const TOPIC: &'static str = "";
                const TAGS: &'static [&'static str] = &[];
                fn tag(&self) -> &'static str {
                    ::core::unimplemented!()
                }
                fn key(&self) -> ::core::option::Option<::std::vec::Vec<u8>> {
                    ::core::unimplemented!()
                }
                fn write_payload<W: ::std::io::Write>(
                    &self,
                    _: W,
                ) -> #private::serde_json::Result<()> {
                    ::core::unimplemented!()
                }
                fn read_payload(
                    _: &str,
                    _: &str,
                ) -> ::core::result::Result<Self, #private::DecodeError> {
                    ::core::unimplemented!()
                }
            }
        };
    }
}

fn struct_items(
    container: &Container<'_>,
    shape: &Shape<'_>,
    private: &TokenStream,
) -> TokenStream {
    let ident = container.ident;
    let name = container.attrs.name.as_ref().map(|name| &name.value);
    let key = match (&container.attrs.key, shape) {
        (Some(key), _) => match shape.field(&key.value.value()) {
            Some((member, ty)) => quote_spanned! {ty.span()=>
                <#ty as #private::PartitionKey>::partition_key(&self.#member)
            },
            None => quote!(::core::option::Option::None),
        },
        (None, _) => quote!(::core::option::Option::None),
    };
    let unknown_tag = unknown_tag(private);
    let payload_error = payload_error(private);
    // Spanned at the type's name: a missing `Serialize`/`Deserialize` is reported there.
    let serde_json = respan(quote!(#private::serde_json), ident.span());
    let write = quote_spanned!(ident.span()=> #serde_json::to_writer(__writer, self));
    let read = quote_spanned!(ident.span()=> #serde_json::from_str::<Self>(__json));

    quote! {
        const TAGS: &'static [&'static str] = &[#name];

        fn tag(&self) -> &'static str {
            #name
        }

        fn key(&self) -> ::core::option::Option<::std::vec::Vec<u8>> {
            #key
        }

        fn write_payload<W: ::std::io::Write>(
            &self,
            __writer: W,
        ) -> #private::serde_json::Result<()> {
            #write
        }

        fn read_payload(
            __tag: &str,
            __json: &str,
        ) -> ::core::result::Result<Self, #private::DecodeError> {
            if __tag != #name {
                return ::core::result::Result::Err(#unknown_tag);
            }
            #read.map_err(|__source| #payload_error)
        }
    }
}

fn enum_items(
    container: &Container<'_>,
    variants: &[Variant<'_>],
    private: &TokenStream,
    krate: &TokenStream,
) -> TokenStream {
    let serde_crate = format!("{krate}::__private::serde");
    let names: Vec<&LitStr> = variants
        .iter()
        .filter_map(|variant| variant.attrs.name.as_ref().map(|name| &name.value))
        .collect();
    let idents = variants.iter().map(|variant| variant.ident);
    let keys = variants
        .iter()
        .map(|variant| variant_key(container, variant, private));
    let writes = variants
        .iter()
        .map(|variant| write_variant(variant, private, &serde_crate));
    let reads = variants
        .iter()
        .map(|variant| read_variant(variant, private, &serde_crate));
    let unknown_tag = unknown_tag(private);
    let payload_error = payload_error(private);

    quote! {
        const TAGS: &'static [&'static str] = &[#(#names),*];

        fn tag(&self) -> &'static str {
            match self {
                #(Self::#idents { .. } => #names,)*
            }
        }

        fn key(&self) -> ::core::option::Option<::std::vec::Vec<u8>> {
            match self {
                #(#keys)*
            }
        }

        fn write_payload<W: ::std::io::Write>(
            &self,
            __writer: W,
        ) -> #private::serde_json::Result<()> {
            match self {
                #(#writes)*
            }
        }

        fn read_payload(
            __tag: &str,
            __json: &str,
        ) -> ::core::result::Result<Self, #private::DecodeError> {
            let __result = match __tag {
                #(#reads)*
                _ => return ::core::result::Result::Err(#unknown_tag),
            };
            __result.map_err(|__source| #payload_error)
        }
    }
}

/// The `key()` match arm of one variant.
fn variant_key(
    container: &Container<'_>,
    variant: &Variant<'_>,
    private: &TokenStream,
) -> TokenStream {
    let ident = variant.ident;
    let key = variant
        .key(container)
        .map(|key: &Setting<LitStr>| &key.value);
    match (&variant.shape, key) {
        (Shape::Named(_), Some(key)) => match variant.shape.field(&key.value()) {
            Some((member, ty)) => {
                let call = quote_spanned! {ty.span()=>
                    <#ty as #private::PartitionKey>::partition_key(__key)
                };
                quote!(Self::#ident { #member: __key, .. } => #call,)
            }
            None => quote!(Self::#ident { .. } => ::core::option::Option::None,),
        },
        (Shape::Newtype(_), Some(key)) => {
            // The field belongs to the wrapped type: the compiler checks it, at the key.
            let Ok(member) = key.parse::<Ident>() else {
                return quote!(Self::#ident { .. } => ::core::option::Option::None,);
            };
            let call = quote_spanned! {key.span()=>
                #private::PartitionKey::partition_key(&__inner.#member)
            };
            quote!(Self::#ident(__inner) => #call,)
        }
        _ => quote!(Self::#ident { .. } => ::core::option::Option::None,),
    }
}

/// The `write_payload()` match arm of one variant.
fn write_variant(variant: &Variant<'_>, private: &TokenStream, serde_crate: &str) -> TokenStream {
    let ident = variant.ident;
    let to_writer = respan(quote!(#private::serde_json::to_writer), ident.span());
    // serde's derive reports some errors at its own invocation: make that the variant.
    let serialize = respan(quote!(#private::serde::Serialize), ident.span());
    match &variant.shape {
        Shape::Named(fields) => {
            let members: Vec<_> = fields.iter().map(|field| &field.ident).collect();
            let bindings: Vec<_> = (0..fields.len()).map(|i| format_ident!("__f{i}")).collect();
            let attrs = fields.iter().map(|field| serde_attrs(field));
            let types = fields.iter().map(|field| {
                let ty = &field.ty;
                quote_spanned!(ty.span()=> &'__a #ty)
            });
            quote! {
                Self::#ident { #(#members: #bindings),* } => {
                    #[derive(#serialize)]
                    #[serde(crate = #serde_crate)]
                    struct __Payload<'__a> {
                        #(#(#attrs)* #members: #types,)*
                    }
                    #to_writer(__writer, &__Payload { #(#members: #bindings),* })
                }
            }
        }
        Shape::Newtype(field) => {
            let ty = &field.ty;
            quote! {
                Self::#ident(__f0) => #to_writer::<_, #ty>(__writer, __f0),
            }
        }
        Shape::Tuple(fields) => {
            let bindings: Vec<_> = (0..fields.len()).map(|i| format_ident!("__f{i}")).collect();
            quote! {
                Self::#ident(#(#bindings),*) => #to_writer(__writer, &(#(#bindings,)*)),
            }
        }
        Shape::Unit => quote! {
            Self::#ident => {
                #[derive(#serialize)]
                #[serde(crate = #serde_crate)]
                struct __Unit {}
                #to_writer(__writer, &__Unit {})
            }
        },
    }
}

/// The `read_payload()` match arm of one variant.
fn read_variant(variant: &Variant<'_>, private: &TokenStream, serde_crate: &str) -> TokenStream {
    let ident = variant.ident;
    let Some(name) = variant.attrs.name.as_ref().map(|name| &name.value) else {
        return TokenStream::new();
    };
    let from_str = respan(quote!(#private::serde_json::from_str), ident.span());
    let deserialize = respan(quote!(#private::serde::Deserialize), ident.span());
    match &variant.shape {
        Shape::Named(fields) => {
            let members: Vec<_> = fields.iter().map(|field| &field.ident).collect();
            let attrs = fields.iter().map(|field| serde_attrs(field));
            let types = fields.iter().map(|field| &field.ty);
            quote! {
                #name => {
                    #[derive(#deserialize)]
                    #[serde(crate = #serde_crate)]
                    struct __Payload {
                        #(#(#attrs)* #members: #types,)*
                    }
                    #from_str::<__Payload>(__json)
                        .map(|__p| Self::#ident { #(#members: __p.#members),* })
                }
            }
        }
        Shape::Newtype(field) => {
            let ty = &field.ty;
            quote! {
                #name => #from_str::<#ty>(__json).map(|__f0| Self::#ident(__f0)),
            }
        }
        Shape::Tuple(fields) => {
            let bindings: Vec<_> = (0..fields.len()).map(|i| format_ident!("__f{i}")).collect();
            let types = fields.iter().map(|field| &field.ty);
            quote! {
                #name => #from_str::<(#(#types,)*)>(__json)
                    .map(|(#(#bindings,)*)| Self::#ident(#(#bindings),*)),
            }
        }
        Shape::Unit => quote! {
            // `{}`, or `null` (a CloudEvent without `data`).
            #name => {
                #[derive(#deserialize)]
                #[serde(crate = #serde_crate)]
                struct __Unit {}
                #from_str::<::core::option::Option<__Unit>>(__json).map(|_| Self::#ident)
            }
        },
    }
}

/// The field's `#[serde(...)]` attributes, copied onto the variant's payload struct.
fn serde_attrs(field: &syn::Field) -> Vec<&syn::Attribute> {
    field
        .attrs
        .iter()
        .filter(|attr| *attr.path() == attr::SERDE)
        .collect()
}

fn unknown_tag(private: &TokenStream) -> TokenStream {
    quote! {
        #private::DecodeError::UnknownTag {
            tag: <str as ::std::borrow::ToOwned>::to_owned(__tag),
            expected: <Self as #private::Event>::TAGS,
        }
    }
}

fn payload_error(private: &TokenStream) -> TokenStream {
    quote! {
        #private::DecodeError::Payload {
            tag: <str as ::std::borrow::ToOwned>::to_owned(__tag),
            source: __source,
        }
    }
}
