//! The TOML file: syntax, unknown keys and value types, checked against the schema.

use toml::{Table, Value as Toml};

use super::error;
use super::raw::{Raw, Setting, Value};
use super::schema::{self, KAFKA, Key, Kind, ROOT, SECTIONS, Section, TOPICS, TOPICS_PATH};
use super::suggest;
use crate::Result;
use crate::security::Secret;

/// Parses `text` and reads every key, refusing unknown keys and values of the wrong type.
pub(super) fn read(text: &str, origin: &str) -> Result<Raw> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let message = match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("`{origin}` line {line}, column {column}: {}", e.message())
            }
            None => format!("`{origin}`: {}", e.message()),
        };
        error(origin, message)
    })?;
    let mut raw = Raw::default();
    for (name, value) in &table {
        if name != ROOT {
            return Err(unknown_key(name, name, None));
        }
        read_kafka(expect_table(value, ROOT)?, &mut raw)?;
    }
    Ok(raw)
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

fn read_kafka(table: &Table, raw: &mut Raw) -> Result<()> {
    for (name, value) in table {
        if let Some(key) = find_key(&KAFKA, name) {
            read_key(&KAFKA, key, value, raw)?;
        } else if name == TOPICS {
            read_topics(expect_table(value, TOPICS_PATH)?, raw)?;
        } else if let Some(section) = schema::subsection(name) {
            for (name, value) in expect_table(value, section.path)? {
                match find_key(section, name) {
                    Some(key) => read_key(section, key, value, raw)?,
                    None => {
                        return Err(unknown_key(
                            &format!("{}.{name}", section.path),
                            name,
                            Some(section),
                        ));
                    }
                }
            }
        } else {
            return Err(unknown_key(&format!("{ROOT}.{name}"), name, Some(&KAFKA)));
        }
    }
    Ok(())
}

fn read_topics(table: &Table, raw: &mut Raw) -> Result<()> {
    for (logical, value) in table {
        let name = format!("{TOPICS_PATH}.{logical}");
        let Toml::String(topic) = value else {
            return Err(error(
                name,
                format!("expected a string, found {}", a(value)),
            ));
        };
        raw.topics.insert(
            logical.clone(),
            Setting {
                value: Value::Str(topic.clone()),
                name,
            },
        );
    }
    Ok(())
}

fn find_key<'s>(section: &'s Section, name: &str) -> Option<&'s Key> {
    section.keys.iter().find(|k| k.name == name)
}

fn read_key(section: &Section, key: &Key, value: &Toml, raw: &mut Raw) -> Result<()> {
    let name = section.dotted(key);
    let value = convert(key.kind, value).map_err(|message| error(&name, message))?;
    raw.set(section, key, Setting { value, name });
    Ok(())
}

/// `value` as `kind` asks, or what is wrong with it.
fn convert(kind: Kind, value: &Toml) -> Result<Value, String> {
    match (kind, value) {
        (Kind::Str, Toml::String(s)) => Ok(Value::Str(s.clone())),
        (Kind::Secret, Toml::String(s)) => Ok(Value::Secret(Secret::new(s.as_str()))),
        (Kind::Choice(_), Toml::String(s)) => {
            kind.check_choice(s).map(|s| Value::Str(s.to_owned()))
        }
        (Kind::Bool, Toml::Boolean(b)) => Ok(Value::Bool(*b)),
        (Kind::Int { .. }, Toml::Integer(n)) => kind.check_int(*n).map(Value::Int),
        (Kind::List, Toml::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Toml::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "expected an array of strings, found {} at index {i}",
                    a(other)
                )),
            })
            .collect::<Result<_, _>>()
            .map(Value::List),
        (kind, other) => Err(format!("expected {}, found {}", kind.describe(), a(other))),
    }
}

fn expect_table<'t>(value: &'t Toml, name: &str) -> Result<&'t Table> {
    match value {
        Toml::Table(table) => Ok(table),
        other => Err(error(name, format!("expected a table, found {}", a(other)))),
    }
}

/// A TOML value's type with its article: "a string", "an integer".
fn a(value: &Toml) -> String {
    let kind = value.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// The error for `name` (at dotted `path`) in `section` (`None`: the top level), with the
/// closest known key of the same table, or else the section that does have a key so named.
fn unknown_key(path: &str, name: &str, section: Option<&Section>) -> crate::Error {
    let known: Vec<&str> = match section {
        None => vec![ROOT],
        Some(section) if section == &KAFKA => KAFKA
            .keys
            .iter()
            .map(|k| k.name)
            .chain(schema::SUBTABLES.iter().copied())
            .collect(),
        Some(section) => section.keys.iter().map(|k| k.name).collect(),
    };
    if let Some(close) = suggest::closest(name, known.iter().copied()) {
        return error(path, format!("unknown key; did you mean `{close}`?"));
    }
    let elsewhere = SECTIONS
        .iter()
        .filter(|s| Some(**s) != section)
        .find(|s| s.keys.iter().any(|k| k.name.eq_ignore_ascii_case(name)));
    if let Some(other) = elsewhere {
        return error(
            path,
            format!(
                "unknown key; `{}` belongs in [{}]",
                name.to_ascii_lowercase(),
                other.path
            ),
        );
    }
    let known = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    error(path, format!("unknown key; expected one of {known}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 5));
        assert_eq!(line_column(text, 100), (3, 1));
    }
}
