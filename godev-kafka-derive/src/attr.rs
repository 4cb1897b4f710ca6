//! Attribute keywords, and the parsing of `#[event(...)]` and `#[handler(...)]` into typed
//! settings that remember the tokens they came from.
//!
//! Parsing checks only what one setting can tell on its own: a known keyword, set once, with a
//! value of the right kind. Where a setting belongs and how settings fit together is checked
//! by each macro's own `check` layer.

use std::fmt;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Path, Token};

use crate::ctxt::Ctxt;

/// An attribute keyword.
#[derive(Copy, Clone)]
pub(crate) struct Symbol(&'static str);

/// The derive's helper attribute: `#[event(...)]`.
pub(crate) const EVENT: Symbol = Symbol("event");
/// The logical topic: `topic = "user_events"`.
pub(crate) const TOPIC: Symbol = Symbol("topic");
/// The tag of a struct or of one variant: `name = "user.created"`.
pub(crate) const NAME: Symbol = Symbol("name");
/// The field holding the partition key: `key = "user_id"`.
pub(crate) const KEY: Symbol = Symbol("key");
/// The path of the runtime crate, for users who rename it: `crate = "my_kafka"`.
pub(crate) const CRATE: Symbol = Symbol("crate");
/// The consumer group of a handler: `group = "mailer"`.
pub(crate) const GROUP: Symbol = Symbol("group");
/// How often a handler is tried per record: `max_attempts = 5`.
pub(crate) const MAX_ATTEMPTS: Symbol = Symbol("max_attempts");
/// The first retry delay of a handler, in milliseconds: `backoff_ms = 200`.
pub(crate) const BACKOFF_MS: Symbol = Symbol("backoff_ms");
/// The topic a handler's dead letters go to: `dead_letter_topic = "payments.failed"`.
pub(crate) const DEAD_LETTER_TOPIC: Symbol = Symbol("dead_letter_topic");
/// serde's attribute, copied onto the payload structs of enum variants.
pub(crate) const SERDE: Symbol = Symbol("serde");

/// The runtime crate's default path.
pub(crate) const DEFAULT_CRATE: &str = "godev_kafka";

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A setting and the keyword it was written with, for errors about where it stands.
pub(crate) struct Setting<T> {
    /// The keyword as written.
    pub(crate) keyword: Path,
    /// The parsed value.
    pub(crate) value: T,
}

/// A setting that may be given at most once.
struct Once<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    setting: Option<Setting<T>>,
}

impl<'c, T> Once<'c, T> {
    fn new(cx: &'c Ctxt, name: Symbol) -> Self {
        Once {
            cx,
            name,
            setting: None,
        }
    }

    fn set(&mut self, keyword: &Path, value: T) {
        if self.setting.is_some() {
            self.cx
                .error_spanned_by(keyword, format!("`{}` specified more than once", self.name));
        } else {
            self.setting = Some(Setting {
                keyword: keyword.clone(),
                value,
            });
        }
    }

    fn get(self) -> Option<Setting<T>> {
        self.setting
    }
}

/// The settings of one `#[event(...)]` site: a struct, an enum or a variant.
pub(crate) struct EventAttrs {
    /// `topic = "..."`.
    pub(crate) topic: Option<Setting<LitStr>>,
    /// `name = "..."`.
    pub(crate) name: Option<Setting<LitStr>>,
    /// `key = "..."`.
    pub(crate) key: Option<Setting<LitStr>>,
    /// `crate = "..."`.
    pub(crate) krate: Option<Setting<Path>>,
    /// Keywords written with a value that was refused (and reported), so that they are not
    /// reported as missing too.
    refused: Vec<&'static str>,
}

impl EventAttrs {
    /// Whether `keyword` was written, even with a refused value.
    pub(crate) fn was_written(&self, keyword: Symbol) -> bool {
        self.refused.contains(&keyword.0)
            || [&self.topic, &self.name, &self.key]
                .into_iter()
                .flatten()
                .any(|setting| setting.keyword == keyword)
            || self
                .krate
                .as_ref()
                .is_some_and(|krate| krate.keyword == keyword)
    }

    /// Reads every `#[event(...)]` among `attrs`, recording mistakes in `cx`.
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut topic = Once::new(cx, TOPIC);
        let mut name = Once::new(cx, NAME);
        let mut key = Once::new(cx, KEY);
        let mut krate = Once::new(cx, CRATE);
        let mut refused = Vec::new();

        for attr in attrs.iter().filter(|attr| *attr.path() == EVENT) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path == TOPIC {
                    match non_empty_string(cx, TOPIC, &meta)? {
                        Some(value) => topic.set(&meta.path, value),
                        None => refused.push(TOPIC.0),
                    }
                } else if meta.path == NAME {
                    match non_empty_string(cx, NAME, &meta)? {
                        Some(value) => name.set(&meta.path, value),
                        None => refused.push(NAME.0),
                    }
                } else if meta.path == KEY {
                    match non_empty_string(cx, KEY, &meta)? {
                        Some(value) => key.set(&meta.path, value),
                        None => refused.push(KEY.0),
                    }
                } else if meta.path == CRATE {
                    match crate_path(cx, &meta)? {
                        Some(path) => krate.set(&meta.path, path),
                        None => refused.push(CRATE.0),
                    }
                } else {
                    unknown(cx, "event", &meta)?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                cx.syn_error(error);
            }
        }

        EventAttrs {
            topic: topic.get(),
            name: name.get(),
            key: key.get(),
            krate: krate.get(),
            refused,
        }
    }
}

/// The settings of `#[handler(...)]`.
pub(crate) struct HandlerAttrs {
    /// `group = "..."`.
    pub(crate) group: Option<Setting<LitStr>>,
    /// `max_attempts = N`, at least 1.
    pub(crate) max_attempts: Option<Setting<u32>>,
    /// `backoff_ms = N`.
    pub(crate) backoff_ms: Option<Setting<u64>>,
    /// `dead_letter_topic = "..."`.
    pub(crate) dead_letter_topic: Option<Setting<LitStr>>,
    /// `crate = "..."`.
    pub(crate) krate: Option<Setting<Path>>,
}

impl HandlerAttrs {
    /// Reads the arguments of `#[handler(...)]`, recording mistakes in `cx`.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut group = Once::new(cx, GROUP);
        let mut max_attempts = Once::new(cx, MAX_ATTEMPTS);
        let mut backoff_ms = Once::new(cx, BACKOFF_MS);
        let mut dead_letter_topic = Once::new(cx, DEAD_LETTER_TOPIC);
        let mut krate = Once::new(cx, CRATE);

        let parser = syn::meta::parser(|meta| {
            if meta.path == GROUP {
                if let Some(value) = non_empty_string(cx, GROUP, &meta)? {
                    group.set(&meta.path, value);
                }
            } else if meta.path == MAX_ATTEMPTS {
                if let Some(value) = integer::<u32>(cx, MAX_ATTEMPTS, &meta)? {
                    if value.1 == 0 {
                        cx.error_spanned_by(&value.0, "`max_attempts` must be at least 1");
                    } else {
                        max_attempts.set(&meta.path, value.1);
                    }
                }
            } else if meta.path == BACKOFF_MS {
                if let Some(value) = integer::<u64>(cx, BACKOFF_MS, &meta)? {
                    backoff_ms.set(&meta.path, value.1);
                }
            } else if meta.path == DEAD_LETTER_TOPIC {
                if let Some(value) = non_empty_string(cx, DEAD_LETTER_TOPIC, &meta)? {
                    dead_letter_topic.set(&meta.path, value);
                }
            } else if meta.path == CRATE {
                if let Some(path) = crate_path(cx, &meta)? {
                    krate.set(&meta.path, path);
                }
            } else {
                unknown(cx, "handler", &meta)?;
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            cx.syn_error(error);
        }

        HandlerAttrs {
            group: group.get(),
            max_attempts: max_attempts.get(),
            backoff_ms: backoff_ms.get(),
            dead_letter_topic: dead_letter_topic.get(),
            krate: krate.get(),
        }
    }
}

/// The runtime crate's path: the `crate = "..."` setting, or `::godev_kafka`.
pub(crate) fn crate_or_default(krate: Option<&Setting<Path>>) -> TokenStream {
    match krate {
        Some(setting) => setting.value.to_token_stream(),
        None => {
            let ident = syn::Ident::new(DEFAULT_CRATE, proc_macro2::Span::call_site());
            quote::quote!(::#ident)
        }
    }
}

/// Reports an unknown keyword and skips its value, so the keywords after it are still read.
fn unknown(cx: &Ctxt, site: &str, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let keyword = meta.path.to_token_stream().to_string().replace(' ', "");
    cx.error_spanned_by(&meta.path, format!("unknown {site} attribute `{keyword}`"));
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// The value of `keyword = <expr>`, parsed as any expression so that a wrong kind of value
/// gets a clear message instead of a parse error.
fn value(meta: &ParseNestedMeta<'_>) -> syn::Result<Expr> {
    meta.value()?.parse()
}

/// A non-empty string literal value; `None` (after recording why) for anything else.
fn non_empty_string(
    cx: &Ctxt,
    keyword: Symbol,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<LitStr>> {
    match value(meta)? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            if lit.value().is_empty() {
                cx.error_spanned_by(&lit, format!("`{keyword}` must not be empty"));
                Ok(None)
            } else {
                Ok(Some(lit))
            }
        }
        other => {
            cx.error_spanned_by(
                other,
                format!("`{keyword}` must be a string literal, as in `{keyword} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// An integer literal value that fits `N`, with the literal it came from.
fn integer<N>(
    cx: &Ctxt,
    keyword: Symbol,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<(LitInt, N)>>
where
    N: std::str::FromStr,
    N::Err: fmt::Display,
{
    match value(meta)? {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => match lit.base10_parse::<N>() {
            Ok(n) => Ok(Some((lit, n))),
            Err(_) => {
                cx.error_spanned_by(
                    &lit,
                    format!(
                        "`{keyword}` must be a whole number that fits a `{}`",
                        std::any::type_name::<N>()
                    ),
                );
                Ok(None)
            }
        },
        other => {
            cx.error_spanned_by(
                other,
                format!("`{keyword}` must be an integer literal, as in `{keyword} = 5`"),
            );
            Ok(None)
        }
    }
}

/// The value of `crate = "path"`, parsed as a path.
fn crate_path(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Path>> {
    let Some(lit) = non_empty_string(cx, CRATE, meta)? else {
        return Ok(None);
    };
    match lit.parse::<Path>() {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!("`crate` must be a path, as in `crate = \"{DEFAULT_CRATE}\"`"),
            );
            Ok(None)
        }
    }
}
