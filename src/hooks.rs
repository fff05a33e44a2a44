//! The one placeholder expander for every user command: the
//! `event_notification_command` and each `*_command` key with placeholders
//! (`fence_command`, `follow_command`, `failover_validation_command`,
//! `child_nodes_disconnect_command`).
//!
//! repmgr substitutes placeholders into a string that `/bin/sh -c` runs.
//! Values that come from the cluster (node names, event details, conninfo)
//! are written by whoever can write the metadata, so they must not be able
//! to end a quote and run a command of their own. Each such value is
//! escaped for the shell context its placeholder stands in: inside single
//! quotes (`'%d'`, how repmgr's documentation quotes them) a `'` becomes
//! `'\''`; inside double quotes `\ " $ `` ` `` are backslash-escaped; outside
//! quotes the value becomes one single-quoted word. Values repmgr itself
//! makes (node IDs, counts, the timestamp, the event name) go in as they
//! are, so templates written for repmgr expand the same.
//!
//! One pass from left to right: text that a value brings in is never
//! expanded again (a node named `%v` stays `%v`).

/// A placeholder's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Made by repmgr (an ID, a count, a timestamp): inserted as it is.
    Plain(String),
    /// From the cluster or the user (a node name, details, a conninfo):
    /// escaped for the shell.
    Cluster(String),
}

/// A placeholder letter and its value; a letter without a value expands
/// to nothing, an unknown one stays as written.
pub type Placeholders<'a> = &'a [(char, Option<Value>)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Expands `%x` placeholders (and `%%`) in `template`.
pub fn expand(template: &str, values: Placeholders<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut quote = Quote::None;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('%', _) => {
                let Some(next) = chars.next() else {
                    out.push('%');
                    break;
                };
                if next == '%' {
                    out.push('%');
                    continue;
                }
                match values.iter().find(|(k, _)| *k == next) {
                    Some((_, Some(v))) => push_value(&mut out, v, quote),
                    Some((_, None)) => {}
                    None => {
                        out.push('%');
                        out.push(next);
                    }
                }
                continue;
            }
            ('\'', Quote::None) => quote = Quote::Single,
            ('\'', Quote::Single) => quote = Quote::None,
            ('"', Quote::None) => quote = Quote::Double,
            ('"', Quote::Double) => quote = Quote::None,
            ('\\', Quote::None | Quote::Double) => {
                // An escaped character does not change the quoting.
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

fn push_value(out: &mut String, v: &Value, quote: Quote) {
    match v {
        Value::Plain(s) => out.push_str(s),
        Value::Cluster(s) => match quote {
            Quote::Single => out.push_str(&s.replace('\'', "'\\''")),
            Quote::Double => {
                for ch in s.chars() {
                    if matches!(ch, '\\' | '"' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(ch);
                }
            }
            Quote::None => {
                out.push('\'');
                out.push_str(&s.replace('\'', "'\\''"));
                out.push('\'');
            }
        },
    }
}

/// A value repmgr makes.
pub fn plain(v: impl ToString) -> Option<Value> {
    Some(Value::Plain(v.to_string()))
}

/// A value from the cluster or the user.
pub fn cluster(v: impl Into<String>) -> Option<Value> {
    Some(Value::Cluster(v.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(line: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn plain_values_and_percent() {
        let v = [('n', plain(2)), ('p', None)];
        assert_eq!(expand("x %n [%p] 100%% %z %", &v), "x 2 [] 100% %z %");
    }

    #[test]
    fn a_value_is_not_expanded_again() {
        let v = [('a', cluster("node%v")), ('v', plain(3))];
        assert_eq!(expand("'%a' %v", &v), "'node%v' 3");
    }

    #[test]
    fn quoted_cluster_values_cannot_leave_their_quotes() {
        let evil = "x'; echo PWNED; echo '";
        let v = [('d', cluster(evil))];
        assert_eq!(sh(&expand("printf '%%s' '%d'", &v)), evil);
        assert_eq!(sh(&expand("printf '%%s' \"%d\"", &v)), evil);
        assert_eq!(sh(&expand("printf '%%s' %d", &v)), evil);
        let dollar = "$(echo PWNED) `echo PWNED` \\ \"";
        let v = [('d', cluster(dollar))];
        assert_eq!(sh(&expand("printf '%%s' \"%d\"", &v)), dollar);
        assert_eq!(sh(&expand("printf '%%s' %d", &v)), dollar);
        assert_eq!(sh(&expand("printf '%%s' '%d'", &v)), dollar);
    }

    #[test]
    fn repmgr_templates_expand_as_before() {
        let v = [
            ('n', plain(2)),
            ('a', cluster("node2")),
            ('e', plain("standby_register")),
            ('s', plain(1)),
            ('t', plain("2026-12-01 10:00:00+00")),
            ('d', cluster("ok done")),
            ('c', cluster("host=a")),
        ];
        assert_eq!(
            expand("/x.sh %n %a %e %s '%t' '%d' '%c'", &v),
            "/x.sh 2 'node2' standby_register 1 '2026-12-01 10:00:00+00' 'ok done' 'host=a'"
        );
    }

    #[test]
    fn escaped_quotes_in_the_template_do_not_open_a_quote() {
        let v = [('a', cluster("n'1"))];
        assert_eq!(sh(&expand("printf '%%s' \\'%a", &v)), "'n'1");
    }
}
