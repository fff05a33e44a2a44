//! A small JSON writer for `--json` (and repmgrd's `/cluster`): a value
//! type whose objects keep their keys in the order they were added, so a
//! document's layout is fixed by the code that builds it, and a renderer
//! with the escaping RFC 8259 requires. Hand-written: the product only
//! writes JSON, and writing it is a page of code, not a dependency.

/// A JSON value. Integers and fractions apart: the CLI's documents hold
/// integers only; repmgrd's status bodies also have seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// A non-finite value is written as null (JSON has no NaN).
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Keys in insertion order; the builder never repeats one.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object, to add fields to with [`Json::field`].
    pub fn object() -> Json {
        Json::Object(Vec::new())
    }

    /// This object with `key` added last (replacing an earlier value of
    /// the same key in place, so a key appears once). On a non-object,
    /// nothing changes: the builder is only ever called on objects.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Json>) -> Json {
        self.set(key, value);
        self
    }

    /// [`Json::field`] in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Json>) {
        if let Json::Object(fields) = self {
            let key = key.into();
            let value = value.into();
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
    }

    /// The document as repmgr prints it: indented by two spaces, one key
    /// or element a line, ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => out.push_str(&n.to_string()),
            Json::Float(x) if x.is_finite() => out.push_str(&x.to_string()),
            Json::Float(_) => out.push_str("null"),
            Json::Str(s) => write_string(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    v.write(out, depth + 1);
                }
                out.push('\n');
                indent(out, depth);
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    write_string(out, k);
                    out.push_str(": ");
                    v.write(out, depth + 1);
                }
                out.push('\n');
                indent(out, depth);
                out.push('}');
            }
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// A JSON string: quotes and backslashes escaped, control characters as
/// `\n`, `\r`, `\t` or `\u00XX`, everything else (UTF-8) as it is, except
/// U+2028 and U+2029, escaped so the text is also valid JavaScript.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<i32> for Json {
    fn from(n: i32) -> Json {
        Json::Int(i64::from(n))
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Int(n)
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::Int(i64::from(n))
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        i64::try_from(n).map_or(Json::Float(n as f64), Json::Int)
    }
}

impl From<f64> for Json {
    fn from(x: f64) -> Json {
        Json::Float(x)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<&String> for Json {
    fn from(s: &String) -> Json {
        Json::Str(s.clone())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Json {
        v.map_or(Json::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Array(v.into_iter().map(Into::into).collect())
    }
}

/// A label as a JSON key: `"Replication lag"` → `replication_lag`,
/// `"WALs pending archiving"` → `wals_pending_archiving`.
pub fn snake_case(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        Json::from(text).render()
    }

    #[test]
    fn fractions_are_numbers_and_non_finite_ones_null() {
        assert_eq!(Json::from(0.25).render(), "0.25\n");
        assert_eq!(Json::from(3.0).render(), "3\n");
        assert_eq!(Json::from(f64::NAN).render(), "null\n");
        assert_eq!(Json::from(u64::MAX).render(), "18446744073709552000\n");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(s("plain"), "\"plain\"\n");
        assert_eq!(s("say \"hi\""), "\"say \\\"hi\\\"\"\n");
        assert_eq!(s("C:\\dir"), "\"C:\\\\dir\"\n");
        assert_eq!(s("a\nb\r\tc"), "\"a\\nb\\r\\tc\"\n");
        assert_eq!(s("\u{0}\u{1}\u{1f}"), "\"\\u0000\\u0001\\u001f\"\n");
        assert_eq!(s("\u{8}\u{c}"), "\"\\u0008\\u000c\"\n");
        // UTF-8 stays as it is; DEL needs no escape.
        assert_eq!(s("nœud→ü 日本\u{7f}"), "\"nœud→ü 日本\u{7f}\"\n");
        assert_eq!(s("\u{2028}\u{2029}"), "\"\\u2028\\u2029\"\n");
    }

    #[test]
    fn every_value_parses_back() {
        let doc = Json::object()
            .field("id", 1)
            .field("big", i64::MIN)
            .field("name", "node\"1\"\n")
            .field("ok", true)
            .field("missing", Option::<i32>::None)
            .field("empty", Json::Array(Vec::new()))
            .field("nested", Json::object())
            .field("list", vec![Json::from(1), Json::from("x"), Json::Null]);
        let text = doc.render();
        assert!(text.ends_with("}\n"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["id"], 1);
        assert_eq!(v["big"], i64::MIN);
        assert_eq!(v["name"], "node\"1\"\n");
        assert_eq!(v["ok"], true);
        assert!(v["missing"].is_null());
        assert_eq!(v["empty"], serde_json::json!([]));
        assert_eq!(v["nested"], serde_json::json!({}));
        assert_eq!(v["list"], serde_json::json!([1, "x", null]));
        // Control characters of every kind survive the round trip.
        let all: String = (0u8..0x20).map(char::from).collect();
        let back: String = serde_json::from_str(&s(&all)).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn keys_keep_their_order_and_appear_once() {
        let doc = Json::object().field("b", 1).field("a", 2).field("b", 3);
        assert_eq!(doc.render(), "{\n  \"b\": 3,\n  \"a\": 2\n}\n");
    }

    #[test]
    fn layout() {
        let doc = Json::object().field(
            "nodes",
            vec![Json::object().field("id", 1).field("up", Json::Null)],
        );
        assert_eq!(
            doc.render(),
            "{\n  \"nodes\": [\n    {\n      \"id\": 1,\n      \"up\": null\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn labels_as_keys() {
        assert_eq!(snake_case("Replication lag"), "replication_lag");
        assert_eq!(
            snake_case("WALs pending archiving"),
            "wals_pending_archiving"
        );
        assert_eq!(snake_case("PostgreSQL version"), "postgresql_version");
        assert_eq!(snake_case("Paused?"), "paused");
        assert_eq!(snake_case("Connection string"), "connection_string");
    }
}
