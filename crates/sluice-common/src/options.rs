//! The `WITH ('k' = 'v', ...)` option bag. Connectors pull each key they know with a typed getter and
//! then call [`OptionBag::finish`], which rejects whatever is left, naming the known keys. This gives
//! precise messages (`'rows-per-second': expected a number, got 'fast'`) without a schema language.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("missing required option '{key}' for connector '{connector}'")]
    Missing { connector: String, key: String },
    #[error("unknown option{} {} for connector '{connector}' (known: {})", if .keys.len() > 1 { "s" } else { "" }, quoted(.keys), .known.join(", "))]
    Unknown { connector: String, keys: Vec<String>, known: Vec<String> },
    #[error("option '{key}': {message}, got '{value}'")]
    Invalid { key: String, value: String, message: String },
}

fn quoted(keys: &[String]) -> String {
    keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
}

/// Options of one table, consumed key by key.
#[derive(Debug, Clone, Default)]
pub struct OptionBag {
    connector: String,
    remaining: BTreeMap<String, String>,
    known: BTreeSet<String>,
}

impl OptionBag {
    pub fn new(connector: impl Into<String>, options: BTreeMap<String, String>) -> Self {
        OptionBag { connector: connector.into(), remaining: options, known: BTreeSet::new() }
    }

    /// Adds an option (used to build per-field bags such as datagen's `fields.<f>.*`).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.remaining.insert(key.into(), value.into());
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// Declares `key` as known without reading it (options handled elsewhere, e.g. `connector`).
    pub fn ignore(&mut self, key: &str) {
        self.known.insert(key.to_string());
        self.remaining.remove(key);
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        self.known.insert(key.to_string());
        self.remaining.remove(key)
    }

    pub fn required_string(&mut self, key: &str) -> Result<String, OptionError> {
        self.string(key).ok_or_else(|| OptionError::Missing { connector: self.connector.clone(), key: key.to_string() })
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, OptionError> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(invalid(key, &v, "expected 'true' or 'false'")),
            },
        }
    }

    pub fn u64(&mut self, key: &str) -> Result<Option<u64>, OptionError> {
        self.parsed(key, "expected a non-negative integer")
    }

    pub fn i64(&mut self, key: &str) -> Result<Option<i64>, OptionError> {
        self.parsed(key, "expected an integer")
    }

    pub fn f64(&mut self, key: &str) -> Result<Option<f64>, OptionError> {
        self.parsed(key, "expected a number")
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str, message: &str) -> Result<Option<T>, OptionError> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| invalid(key, &v, message)),
        }
    }

    /// One of `allowed` (case-insensitive); returns the canonical spelling from `allowed`.
    pub fn one_of(&mut self, key: &str, allowed: &[&'static str]) -> Result<Option<&'static str>, OptionError> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v.trim()))
                .copied()
                .map(Some)
                .ok_or_else(|| invalid(key, &v, &format!("expected one of {}", allowed.join(", ")))),
        }
    }

    /// A duration in Flink's syntax: `10s`, `500 ms`, `1 min`, `2h`, `1d`; a bare number is millis.
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, OptionError> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => parse_duration(&v).map(Some).map_err(|m| invalid(key, &v, &m)),
        }
    }

    /// A memory size in Flink's syntax: `128mb`, `1 gb`, `512kb`, `100b`; a bare number is bytes.
    pub fn memory_size(&mut self, key: &str) -> Result<Option<u64>, OptionError> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => parse_memory_size(&v).map(Some).map_err(|m| invalid(key, &v, &m)),
        }
    }

    /// Removes and returns every key under `prefix` (e.g. `fields.`), keyed by the rest of the name.
    pub fn with_prefix(&mut self, prefix: &str) -> BTreeMap<String, String> {
        let keys: Vec<String> = self.remaining.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter()
            .map(|k| {
                let v = self.remaining.remove(&k).expect("key listed above");
                self.known.insert(k.clone());
                (k[prefix.len()..].to_string(), v)
            })
            .collect()
    }

    /// Fails if any option was not pulled, listing the unknown keys and every known one.
    pub fn finish(self) -> Result<(), OptionError> {
        if self.remaining.is_empty() {
            return Ok(());
        }
        Err(OptionError::Unknown {
            connector: self.connector,
            keys: self.remaining.into_keys().collect(),
            known: self.known.into_iter().collect(),
        })
    }
}

fn invalid(key: &str, value: &str, message: &str) -> OptionError {
    OptionError::Invalid { key: key.to_string(), value: value.to_string(), message: message.to_string() }
}

fn split_number(s: &str) -> Result<(f64, String), String> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let n: f64 = s[..end].parse().map_err(|_| "expected a number followed by a unit".to_string())?;
    Ok((n, s[end..].trim().to_ascii_lowercase()))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = split_number(s)?;
    let millis = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return Err("expected a duration such as '10 s', '500 ms', '1 min', '2 h'".to_string()),
    };
    Ok(Duration::from_secs_f64(n * millis / 1000.0))
}

pub fn parse_memory_size(s: &str) -> Result<u64, String> {
    let (n, unit) = split_number(s)?;
    let mult: f64 = match unit.as_str() {
        "" | "b" | "bytes" => 1.0,
        "k" | "kb" | "kibibytes" => 1024.0,
        "m" | "mb" | "mebibytes" => 1024.0 * 1024.0,
        "g" | "gb" | "gibibytes" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err("expected a size such as '128 mb', '1 gb', '512 kb'".to_string()),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(pairs: &[(&str, &str)]) -> OptionBag {
        OptionBag::new("test", pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn unknown_options_are_listed_with_known_ones() {
        let mut b = bag(&[("path", "/x"), ("formt", "json")]);
        b.string("path");
        b.string("format");
        let err = b.finish().unwrap_err().to_string();
        assert_eq!(err, "unknown option 'formt' for connector 'test' (known: format, path)");
    }

    #[test]
    fn typed_pulls_name_the_key_and_value() {
        let mut b = bag(&[("rows-per-second", "fast")]);
        let err = b.u64("rows-per-second").unwrap_err().to_string();
        assert_eq!(err, "option 'rows-per-second': expected a non-negative integer, got 'fast'");
    }

    #[test]
    fn durations_and_sizes_use_flink_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10 min").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_memory_size("128mb").unwrap(), 128 * 1024 * 1024);
    }

    #[test]
    fn prefix_options_are_grouped() {
        let mut b = bag(&[("fields.id.kind", "sequence"), ("fields.id.start", "1"), ("number-of-rows", "5")]);
        let f = b.with_prefix("fields.");
        assert_eq!(f.len(), 2);
        assert_eq!(f["id.kind"], "sequence");
        b.u64("number-of-rows").unwrap();
        b.finish().unwrap();
    }
}
