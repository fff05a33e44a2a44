//! The product's own session (db::Session) against a real server: what
//! its pipelined statements promise (issue 14's one-round-trip node check
//! and node status rely on it).

use postgres::types::Type;
use repmgr::conninfo::ConnInfo;
use repmgr::db::{RowExt, Sql};

use crate::harness::PgNode;

fn session(n: &PgNode) -> repmgr::db::Session {
    let ci = ConnInfo::parse(&n.conninfo()).unwrap();
    repmgr::db::connect::connect(&ci, "db_session_test").unwrap()
}

/// One failing statement among pipelined ones fails alone: the others'
/// answers arrive, in order, and the session stays usable.
#[test]
fn a_failing_pipelined_statement_leaves_the_others_answers() {
    let n = PgNode::builder("pipe").start();
    let mut s = session(&n);
    let one = 1i32;
    let zero = 0i32;
    let answers = s
        .query_typed_all(&[
            ("SELECT $1::int4 + 1", &[(&one, Type::INT4)]),
            ("SELECT 1 / $1::int4", &[(&zero, Type::INT4)]),
            (
                "SELECT relname::text FROM pg_catalog.pg_class WHERE relname = 'no_such_table'",
                &[],
            ),
            ("SELECT * FROM no_such_table", &[]),
            ("SELECT pg_catalog.pg_is_in_recovery()", &[]),
        ])
        .unwrap();
    assert_eq!(answers.len(), 5);
    let first: i32 = answers[0].as_ref().unwrap()[0].val(0).unwrap();
    assert_eq!(first, 2);
    let e = answers[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("division by zero"), "{e}");
    assert!(answers[2].as_ref().unwrap().is_empty());
    let e = answers[3].as_ref().unwrap_err().to_string();
    assert!(e.contains("no_such_table"), "{e}");
    let rec: bool = answers[4].as_ref().unwrap()[0].val(0).unwrap();
    assert!(!rec);
    // Nothing left half-read on the connection.
    let after: i32 = s
        .query_typed_one("SELECT $1::int4 * 7", &[(&one, Type::INT4)])
        .unwrap()
        .val(0)
        .unwrap();
    assert_eq!(after, 7);
    // No statement: no answers, no round trip needed.
    assert!(s.query_typed_all(&[]).unwrap().is_empty());
}
