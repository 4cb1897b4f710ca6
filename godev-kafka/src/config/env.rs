//! The environment overlay: `KAFKA_<SECTION>_<KEY>` variables replace what the file says.

use super::error;
use super::raw::{Raw, Setting, Value};
use super::schema::{self, Kind, SECTIONS};
use crate::Result;
use crate::security::Secret;

/// Replaces every setting whose variable `env` knows, and the topic of every logical name
/// the file lists whose `KAFKA_TOPICS_<LOGICAL>` variable is set.
pub(super) fn overlay(raw: &mut Raw, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    for section in SECTIONS {
        for key in section.keys {
            let var = section.env_var(key);
            if let Some(text) = env(&var) {
                let value = parse(key.kind, &text).map_err(|message| error(&var, message))?;
                raw.set(section, key, Setting { value, name: var });
            }
        }
    }
    for (logical, setting) in &mut raw.topics {
        let var = schema::topic_env_var(logical);
        if let Some(topic) = env(&var) {
            *setting = Setting {
                value: Value::Str(topic),
                name: var,
            };
        }
    }
    Ok(())
}

/// The value of a variable, as `kind` asks. Strings and secrets are taken as they are;
/// everything else is trimmed first.
fn parse(kind: Kind, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    match kind {
        Kind::Str => Ok(Value::Str(text.to_owned())),
        Kind::Secret => Ok(Value::Secret(Secret::new(text))),
        Kind::Choice(_) => kind.check_choice(trimmed).map(|s| Value::Str(s.to_owned())),
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "expected true or false (or 1/0, yes/no), found `{text}`"
            )),
        },
        Kind::Int { .. } => match trimmed.parse::<i64>() {
            Ok(n) => kind.check_int(n).map(Value::Int),
            Err(_) => Err(format!("expected an integer, found `{text}`")),
        },
        Kind::List => Ok(Value::List(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_the_usual_spellings() {
        for yes in ["true", "TRUE", "1", "yes", " Yes "] {
            assert_eq!(parse(Kind::Bool, yes), Ok(Value::Bool(true)), "{yes}");
        }
        for no in ["false", "False", "0", "no", "NO"] {
            assert_eq!(parse(Kind::Bool, no), Ok(Value::Bool(false)), "{no}");
        }
        assert_eq!(
            parse(Kind::Bool, "on"),
            Err("expected true or false (or 1/0, yes/no), found `on`".to_owned())
        );
    }

    #[test]
    fn lists_are_comma_separated_and_trimmed() {
        assert_eq!(
            parse(Kind::List, " a:1 , b:2,,"),
            Ok(Value::List(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(parse(Kind::List, ""), Ok(Value::List(vec![])));
    }
}
