//! `key[=value]` field lists as they appear after the fixed fields of
//! `AUTH`, `OK`, `FAIL`, `USER`, `PASS`... Order and empty fields are kept, so
//! a parsed line serialises back to the same bytes (Dovecot ends some replies
//! with an empty field, e.g. `OK\t1\tuser=tim\t`).

/// One field: `key` or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Name (may be empty for an empty field).
    pub key: String,
    /// Value after the first `=`, if any.
    pub value: Option<String>,
}

impl Field {
    /// Parses an unescaped field.
    pub fn parse(field: &str) -> Self {
        match field.split_once('=') {
            Some((k, v)) => Field { key: k.to_string(), value: Some(v.to_string()) },
            None => Field { key: field.to_string(), value: None },
        }
    }

    /// The field as text (unescaped).
    pub fn to_text(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.key),
            None => self.key.clone(),
        }
    }
}

/// An ordered field list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<Field>);

impl Fields {
    /// Empty list.
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    /// From unescaped field strings.
    pub fn parse<'a>(fields: impl IntoIterator<Item = &'a String>) -> Self {
        Fields(fields.into_iter().map(|f| Field::parse(f)).collect())
    }

    /// Appends `key=value`.
    pub fn add(&mut self, key: &str, value: &str) -> &mut Self {
        self.0.push(Field { key: key.into(), value: Some(value.into()) });
        self
    }

    /// Appends a bare flag `key`.
    pub fn add_flag(&mut self, key: &str) -> &mut Self {
        self.0.push(Field { key: key.into(), value: None });
        self
    }

    /// Builder form of [`Fields::add`].
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.add(key, value);
        self
    }

    /// Builder form of [`Fields::add_flag`].
    pub fn with_flag(mut self, key: &str) -> Self {
        self.add_flag(key);
        self
    }

    /// Value of the first field named `key` (`Some("")` for a bare flag).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|f| f.key == key).map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// True when a field named `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|f| f.key == key)
    }

    /// Non-empty fields as `(key, value)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|f| !f.key.is_empty())
            .map(|f| (f.key.as_str(), f.value.as_deref().unwrap_or("")))
    }

    /// Appends `\tfield` for each field, escaped.
    pub fn write(&self, out: &mut Vec<u8>) {
        for f in &self.0 {
            super::push_field(out, &f.to_text());
        }
    }
}
