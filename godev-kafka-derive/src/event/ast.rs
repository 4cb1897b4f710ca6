//! The derive's input as typed structures: the container, its variants, their settings.

use syn::{DeriveInput, Field, Ident, LitStr, Type};

use crate::attr::{EventAttrs, Setting};
use crate::ctxt::Ctxt;

/// The type deriving `Event`.
pub(crate) struct Container<'a> {
    /// The type's name.
    pub(crate) ident: &'a Ident,
    /// The `#[event(...)]` settings on the type itself.
    pub(crate) attrs: EventAttrs,
    /// What the type is made of.
    pub(crate) data: Data<'a>,
    /// The input as written.
    pub(crate) original: &'a DeriveInput,
}

/// A struct's fields, an enum's variants, or a union (which is refused).
pub(crate) enum Data<'a> {
    /// A struct: one tag.
    Struct(Shape<'a>),
    /// An enum: one tag per variant.
    Enum(Vec<Variant<'a>>),
    /// A union, kept only to be reported.
    Union(&'a syn::DataUnion),
}

/// One variant of an enum.
pub(crate) struct Variant<'a> {
    /// The variant's name.
    pub(crate) ident: &'a Ident,
    /// The `#[event(...)]` settings on the variant.
    pub(crate) attrs: EventAttrs,
    /// The variant's fields.
    pub(crate) shape: Shape<'a>,
}

/// The fields of a struct or of a variant, which decide its payload's JSON shape.
pub(crate) enum Shape<'a> {
    /// `{ a: A, b: B }`: a JSON object of the fields.
    Named(Vec<&'a Field>),
    /// `(Inner)`: the inner value's own JSON.
    Newtype(&'a Field),
    /// `(A, B)` (or `()`): a JSON array of the fields.
    Tuple(Vec<&'a Field>),
    /// No fields: `{}`.
    Unit,
}

impl<'a> Container<'a> {
    /// Reads `input`, recording attribute mistakes in `cx`.
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let data = match &input.data {
            syn::Data::Struct(data) => Data::Struct(Shape::from_fields(&data.fields)),
            syn::Data::Enum(data) => Data::Enum(
                data.variants
                    .iter()
                    .map(|variant| Variant {
                        ident: &variant.ident,
                        attrs: EventAttrs::from_attrs(cx, &variant.attrs),
                        shape: Shape::from_fields(&variant.fields),
                    })
                    .collect(),
            ),
            syn::Data::Union(data) => Data::Union(data),
        };
        Container {
            ident: &input.ident,
            attrs: EventAttrs::from_attrs(cx, &input.attrs),
            data,
            original: input,
        }
    }

    /// The enum-level `key`, for enums.
    pub(crate) fn enum_key(&self) -> Option<&Setting<LitStr>> {
        match self.data {
            Data::Enum(_) => self.attrs.key.as_ref(),
            _ => None,
        }
    }
}

impl<'a> Variant<'a> {
    /// The key of this variant: its own `key`, or else the enum's.
    pub(crate) fn key<'s>(&'s self, container: &'s Container<'_>) -> Option<&'s Setting<LitStr>> {
        self.attrs.key.as_ref().or_else(|| match self.shape {
            // The enum-level key speaks only of variants that have fields to name.
            Shape::Named(_) | Shape::Newtype(_) => container.enum_key(),
            Shape::Tuple(_) | Shape::Unit => None,
        })
    }
}

impl<'a> Shape<'a> {
    fn from_fields(fields: &'a syn::Fields) -> Self {
        match fields {
            syn::Fields::Named(named) => Shape::Named(named.named.iter().collect()),
            syn::Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                Shape::Newtype(&unnamed.unnamed[0])
            }
            syn::Fields::Unnamed(unnamed) => Shape::Tuple(unnamed.unnamed.iter().collect()),
            syn::Fields::Unit => Shape::Unit,
        }
    }

    /// The named field called `name`, if the shape has named fields.
    pub(crate) fn field(&self, name: &str) -> Option<(&'a Ident, &'a Type)> {
        let Shape::Named(fields) = self else {
            return None;
        };
        let name = name.strip_prefix("r#").unwrap_or(name);
        fields.iter().find_map(|field| {
            let ident = field.ident.as_ref()?;
            (syn::ext::IdentExt::unraw(ident) == name).then_some((ident, &field.ty))
        })
    }
}
