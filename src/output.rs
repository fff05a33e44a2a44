//! repmgr's output formats: the psql-like tables of `cluster show`,
//! `cluster event` and `service status`, CSV, and JSON (`json.rs`).

pub mod json;

/// A node as repmgr names it in messages: `"node2" (ID: 2)`. For a node
/// known only by its configuration (this node), or by its record (whose
/// Display uses this).
pub struct NodeName<'a>(pub &'a str, pub i32);

impl std::fmt::Display for NodeName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\" (ID: {})", self.0, self.1)
    }
}

/// Renders a table as repmgr's `print_status_header` does: a space, cells
/// padded to the column width and separated by " | ", a dashed rule with
/// "-+-" joints. Every cell, the last included, is padded; `row_end_space`:
/// a data row ends in one more space, as repmgr prints each cell as
/// `"| %-*s "` (all but `cluster show`'s conninfo column).
pub fn table(headers: &[&str], rows: &[Vec<String>], row_end_space: bool) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain(std::iter::once(h.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            out.push_str(if i == 0 { " " } else { " | " });
            out.push_str(c);
            out.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
        }
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    out.push('-');
    for (i, w) in widths.iter().enumerate() {
        out.push_str(&"-".repeat(*w));
        out.push_str(if i + 1 < widths.len() { "-+-" } else { "-" });
    }
    out.push('\n');
    for r in rows {
        line(&mut r.iter().map(String::as_str), &mut out);
        if row_end_space {
            out.insert(out.len() - 1, ' ');
        }
    }
    out
}

/// A CSV field, quoted only when it must be (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv_line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_repmgrs_layout() {
        let t = table(
            &["ID", "Name", "Role"],
            &[
                vec!["1".into(), "node1".into(), "primary".into()],
                vec!["2".into(), "node2".into(), "standby".into()],
            ],
            false,
        );
        assert_eq!(
            t,
            " ID | Name  | Role   \n\
             ----+-------+---------\n \
             1  | node1 | primary\n \
             2  | node2 | standby\n"
        );
        let t = table(&["ID"], &[vec!["1".into()]], true);
        assert_eq!(t, " ID\n----\n 1  \n");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
