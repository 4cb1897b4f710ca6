//! What the derive checks before writing any code: where each setting stands, that the
//! required ones are there, that keys name fields and that tags are unique.

use std::collections::HashMap;

use syn::{Ident, LitStr};

use super::ast::{Container, Data, Shape, Variant};
use crate::attr::{EventAttrs, NAME, Setting, TOPIC};
use crate::ctxt::Ctxt;

/// Records every mistake in `container` in `cx`.
pub(crate) fn check(cx: &Ctxt, container: &Container<'_>) {
    check_generics(cx, container);
    match &container.data {
        Data::Struct(shape) => check_struct(cx, container, shape),
        Data::Enum(variants) => check_enum(cx, container, variants),
        Data::Union(data) => cx.error_spanned_by(
            data.union_token,
            "`#[derive(Event)]` supports structs and enums, not unions",
        ),
    }
}

fn check_generics(cx: &Ctxt, container: &Container<'_>) {
    let generics = &container.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            &generics.params,
            "`#[derive(Event)]` does not support generic parameters",
        );
    } else if let Some(where_clause) = &generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "`#[derive(Event)]` does not support generic parameters",
        );
    }
}

fn check_struct(cx: &Ctxt, container: &Container<'_>, shape: &Shape<'_>) {
    let ident = container.ident;
    let attrs = &container.attrs;
    require_topic(cx, container);
    if !attrs.was_written(NAME) {
        cx.error_spanned_by(
            ident,
            format!("missing `name` on `{ident}`: add `#[event(name = \"...\")]`"),
        );
    }
    if let Some(key) = &attrs.key {
        if let Shape::Named(_) = shape {
            if shape.field(&key.value.value()).is_none() {
                cx.error_spanned_by(
                    &key.value,
                    format!(
                        "`key` must name a field of this struct: `{ident}` has no field `{}`",
                        key.value.value()
                    ),
                );
            }
        } else {
            cx.error_spanned_by(
                &key.value,
                format!("`key` must name a field, but `{ident}` has no named fields"),
            );
        }
    }
}

fn check_enum(cx: &Ctxt, container: &Container<'_>, variants: &[Variant<'_>]) {
    let attrs = &container.attrs;
    require_topic(cx, container);
    if let Some(name) = &attrs.name {
        cx.error_spanned_by(
            &name.keyword,
            "`name` belongs on each variant of an enum, not on the enum",
        );
    }
    if variants.is_empty() {
        cx.error_spanned_by(
            container.ident,
            format!(
                "`{}` has no variants: an event enum needs at least one",
                container.ident
            ),
        );
    }
    if let Some(key) = container.enum_key() {
        check_key_is_name(cx, key);
    }

    let mut tags: HashMap<String, &Ident> = HashMap::new();
    for variant in variants {
        check_variant_placement(cx, &variant.attrs);
        match &variant.attrs.name {
            None if variant.attrs.was_written(NAME) => {}
            None => cx.error_spanned_by(
                variant.ident,
                format!(
                    "missing `name` on variant `{}`: add `#[event(name = \"...\")]`",
                    variant.ident
                ),
            ),
            Some(name) => {
                let tag = name.value.value();
                if let Some(first) = tags.get(&tag) {
                    cx.error_spanned_by(
                        &name.value,
                        format!("duplicate tag `{tag}`, already used by variant `{first}`"),
                    );
                } else {
                    tags.insert(tag, variant.ident);
                }
            }
        }
        check_variant_key(cx, container, variant);
    }
}

fn require_topic(cx: &Ctxt, container: &Container<'_>) {
    if !container.attrs.was_written(TOPIC) {
        cx.error_spanned_by(
            container.ident,
            format!(
                "missing `topic` on `{}`: add `#[event(topic = \"...\")]`",
                container.ident
            ),
        );
    }
}

/// `topic` and `crate` describe the whole type, so they stand on the enum.
fn check_variant_placement(cx: &Ctxt, attrs: &EventAttrs) {
    if let Some(topic) = &attrs.topic {
        cx.error_spanned_by(
            &topic.keyword,
            "`topic` belongs on the enum, not on a variant",
        );
    }
    if let Some(krate) = &attrs.krate {
        cx.error_spanned_by(
            &krate.keyword,
            "`crate` belongs on the enum, not on a variant",
        );
    }
}

fn check_variant_key(cx: &Ctxt, container: &Container<'_>, variant: &Variant<'_>) {
    let ident = variant.ident;
    if let Some(own) = &variant.attrs.key {
        match &variant.shape {
            Shape::Named(_) => {
                if variant.shape.field(&own.value.value()).is_none() {
                    cx.error_spanned_by(
                        &own.value,
                        format!(
                            "`key` field `{}` not found in variant `{ident}`",
                            own.value.value()
                        ),
                    );
                }
            }
            Shape::Newtype(_) => check_key_is_name(cx, own),
            Shape::Tuple(_) | Shape::Unit => cx.error_spanned_by(
                &own.value,
                format!(
                    "`key` must name a field, but variant `{ident}` has no named fields and wraps no struct"
                ),
            ),
        }
    } else if let (Some(key), Shape::Named(_)) = (container.enum_key(), &variant.shape) {
        let name = key.value.value();
        if variant.shape.field(&name).is_none() {
            cx.error_spanned_by(
                ident,
                format!(
                    "`key` field `{name}` not found in variant `{ident}`: add the field, or give the variant its own `#[event(key = \"...\")]`"
                ),
            );
        }
    }
}

/// A key that names a field of a wrapped type is only checked by the compiler; here it must
/// at least be a field name.
fn check_key_is_name(cx: &Ctxt, key: &Setting<LitStr>) {
    if key.value.parse::<Ident>().is_err() {
        cx.error_spanned_by(
            &key.value,
            format!("`key` must be a field name, not `{}`", key.value.value()),
        );
    }
}
