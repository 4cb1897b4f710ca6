//! The settings as read, before validation: one typed value per key, with the name to blame.

use std::collections::{BTreeMap, HashMap};

use super::schema::{Key, Section};
use crate::security::Secret;

/// A value that has the kind its key's schema asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    List(Vec<String>),
    /// A password or a token: its `Debug` prints `<redacted>`.
    Secret(Secret),
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Setting {
    pub(super) value: Value,
    /// What errors name: the dotted key for the file, the variable for the environment.
    pub(super) name: String,
}

/// Every setting the file and the environment gave, by dotted key.
#[derive(Debug, Default)]
pub(super) struct Raw {
    values: HashMap<String, Setting>,
    /// `[kafka.topics]`: logical name to real topic (a string setting).
    pub(super) topics: BTreeMap<String, Setting>,
}

impl Raw {
    pub(super) fn set(&mut self, section: &Section, key: &Key, setting: Setting) {
        self.values.insert(section.dotted(key), setting);
    }

    pub(super) fn get(&self, section: &Section, key: &Key) -> Option<&Setting> {
        self.values.get(&section.dotted(key))
    }
}

impl Setting {
    pub(super) fn str(&self) -> &str {
        match &self.value {
            Value::Str(s) => s,
            other => unreachable!("`{}` was read as {other:?}, not a string", self.name),
        }
    }

    pub(super) fn bool(&self) -> bool {
        match self.value {
            Value::Bool(b) => b,
            ref other => unreachable!("`{}` was read as {other:?}, not a boolean", self.name),
        }
    }

    pub(super) fn int(&self) -> u64 {
        match self.value {
            Value::Int(n) => n,
            ref other => unreachable!("`{}` was read as {other:?}, not an integer", self.name),
        }
    }

    pub(super) fn secret(&self) -> &Secret {
        match &self.value {
            Value::Secret(secret) => secret,
            other => unreachable!("`{}` was read as {other:?}, not a secret", self.name),
        }
    }

    pub(super) fn list(&self) -> &[String] {
        match &self.value {
            Value::List(items) => items,
            other => unreachable!("`{}` was read as {other:?}, not a list", self.name),
        }
    }
}
