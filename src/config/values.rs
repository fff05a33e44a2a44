//! serde helpers for [`Config`](super::Config)'s fields: every value arrives
//! as a string from serde_ini and is read here as its kind of value.

use serde::de::{Deserializer, Error as _, IntoDeserializer};
use serde::Deserialize;

use crate::error::Result;
use crate::logging::RepmgrLevel;

pub(super) fn node_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    at_least::<1, D>(d).map(Some)
}

/// An integer no smaller than `MIN` (repmgr's per-key `intminval`).
pub(super) fn at_least<'de, const MIN: i32, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().parse::<i32>() {
        Ok(n) if n >= MIN => Ok(n),
        _ => Err(D::Error::custom(format!("expected an integer >= {MIN}"))),
    }
}

/// PostgreSQL's `parse_bool` words, case-insensitive.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "off" | "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    parse_bool(&text).ok_or_else(|| D::Error::custom("expected a boolean"))
}

/// A unit enum written in any case (`failover = Automatic`).
pub(super) fn word<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?.trim().to_ascii_lowercase();
    T::deserialize(text.into_deserializer())
}

pub(super) fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<RepmgrLevel, D::Error> {
    let text = String::deserialize(d)?;
    RepmgrLevel::parse(text.trim()).ok_or_else(|| D::Error::custom("expected a log level"))
}

pub(super) fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(String::deserialize(d)?
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect())
}

/// One `old=new` pair; `\=` keeps an `=` inside a directory name, as
/// pg_basebackup's `--tablespace-mapping` allows.
pub(super) fn tablespace_mapping<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    let text = String::deserialize(d)?;
    split_mapping(&text)
        .map(|pair| vec![pair])
        .ok_or_else(|| D::Error::custom("expected 'old_directory=new_directory'"))
}

fn split_mapping(text: &str) -> Option<(String, String)> {
    let mut old = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => old.push(chars.next().unwrap_or('\\')),
            '=' => {
                let new = chars.as_str().replace("\\=", "=");
                let old = old.trim().to_string();
                let new = new.trim().to_string();
                return (!old.is_empty() && !new.is_empty()).then_some((old, new));
            }
            other => old.push(other),
        }
    }
    None
}

/// `recovery_min_apply_delay`: an integer with an optional unit; kept as
/// written since it is copied into PostgreSQL's recovery configuration.
pub(super) fn delay<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?.trim().to_string();
    if text.is_empty() || is_delay(&text) {
        Ok(text)
    } else {
        Err(D::Error::custom(
            "expected an integer with an optional unit",
        ))
    }
}

fn is_delay(text: &str) -> bool {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    !number.is_empty()
        && number.parse::<i64>().is_ok()
        && matches!(unit.trim_start(), "" | "ms" | "s" | "min" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use crate::config::params::{self, Kind};
    use crate::config::tests::{messages, only};

    #[test]
    fn int_minimums_match_the_table() {
        for p in params::PARAMS {
            let min = match p.kind {
                Kind::Int { min } => min,
                Kind::NodeId => 1,
                _ => continue,
            };
            let below = format!("{} = {}\n", p.name, i64::from(min) - 1);
            let errors = messages(&below);
            assert_eq!(
                errors,
                vec![format!(
                    "/x/repmgr.conf:1: invalid value for parameter \"{}\": \"{}\" (expected an integer >= {min})",
                    p.name,
                    i64::from(min) - 1
                )]
            );
        }
    }

    #[test]
    fn booleans() {
        for (word, value) in [
            ("on", true),
            ("ON", true),
            ("true", true),
            ("Yes", true),
            ("1", true),
            ("off", false),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(
                only("monitoring_history", word).monitoring_history,
                value,
                "{word}"
            );
        }
        assert_eq!(
            messages("monitoring_history = maybe\n"),
            ["/x/repmgr.conf:1: invalid value for parameter \"monitoring_history\": \"maybe\" (expected a boolean: on, off, true, false, yes, no, 1 or 0)"]
        );
    }

    #[test]
    fn other_invalid_values() {
        for (line, expected) in [
            ("replication_type = logical", "\"physical\""),
            (
                "log_level = LOUD",
                "\"DEBUG\", \"INFO\", \"NOTICE\", \"WARNING\" or \"ERROR\"",
            ),
            (
                "recovery_min_apply_delay = '5 weeks'",
                "an integer >= 0 with an optional unit: ms, s, min, h or d",
            ),
            (
                "recovery_min_apply_delay = -5s",
                "an integer >= 0 with an optional unit: ms, s, min, h or d",
            ),
            ("tablespace_mapping = '/a'", "'old_directory=new_directory'"),
            (
                "tablespace_mapping = '=/b'",
                "'old_directory=new_directory'",
            ),
            ("priority = 99999999999", "an integer >= 0"),
            ("node_id = ''", "an integer >= 1"),
        ] {
            let errors = messages(&format!("{line}\n"));
            assert_eq!(errors.len(), 1, "{line}");
            assert!(
                errors[0].ends_with(&format!("(expected {expected})")),
                "{line}: {errors:?}"
            );
        }
    }

    #[test]
    fn delays_with_units() {
        for value in ["0", "500ms", "'5 s'", "5min", "2h", "1d"] {
            only("recovery_min_apply_delay", value);
        }
    }

    #[test]
    fn tablespace_mapping_escaped_equals() {
        let c = only("tablespace_mapping", r"'/a\\=b=/c'");
        assert_eq!(c.tablespace_mapping, [("/a=b".into(), "/c".into())]);
    }
}
