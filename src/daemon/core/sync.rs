//! Synchronous replication and elections: which standbys can hold an
//! acknowledged commit, and whether a candidate is sure to hold them all.
//!
//! With `synchronous_standby_names` listing standbys L and requiring k of
//! them (FIRST k or ANY k), every acknowledged commit is on at least k
//! members of L. When fewer than k members of L are out of sight, at least
//! one visible member holds each acknowledged commit, so a candidate with
//! at least the WAL of every visible member (on the same timeline) holds
//! them all. Otherwise no candidate can be sure, and none is promoted.

use super::types::{Lsn, NodeId};

/// `synchronous_standby_names`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSpec {
    /// How many listed standbys must acknowledge a commit.
    pub required: usize,
    /// The names listed; `*` matches any standby.
    pub names: Vec<String>,
}

impl SyncSpec {
    /// None when synchronous replication is off (an empty setting).
    /// Unparsable text is taken as "one of every standby", the strictest.
    pub fn parse(setting: &str) -> Option<SyncSpec> {
        let s = setting.trim();
        if s.is_empty() {
            return None;
        }
        let strictest = || SyncSpec {
            required: 1,
            names: vec!["*".to_string()],
        };
        let (required, list) = match s.find('(') {
            Some(open) => {
                let head = s[..open].trim();
                let Some(inner) = s[open + 1..].trim_end().strip_suffix(')') else {
                    return Some(strictest());
                };
                let count = head
                    .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .trim();
                let keyword = head[..head.len() - count.len()].trim().to_ascii_uppercase();
                if !(keyword.is_empty() || keyword == "FIRST" || keyword == "ANY") {
                    return Some(strictest());
                }
                match count.parse::<usize>() {
                    Ok(n) => (n, inner),
                    Err(_) => return Some(strictest()),
                }
            }
            None => (1, s),
        };
        let names = list
            .split(',')
            .map(|n| n.trim().trim_matches('"').to_string())
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>();
        if names.is_empty() {
            return Some(strictest());
        }
        Some(SyncSpec { required, names })
    }

    pub fn lists(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == "*" || n.eq_ignore_ascii_case(name))
    }
}

/// A standby as the election sees it, for this rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncView<'a> {
    pub id: NodeId,
    pub name: &'a str,
    pub visible: bool,
    pub timeline: u32,
    pub lsn: Lsn,
}

/// Why no candidate can be sure to hold every acknowledged commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// `missing` of the listed standbys are out of sight, and commits need
    /// `required` of them.
    TooFewVisible { missing: usize, required: usize },
    /// A visible listed standby has WAL the candidate lacks.
    Behind { standby: NodeId },
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsafe::TooFewVisible { missing, required } => write!(
                f,
                "{missing} synchronous standby(s) out of sight and commits need {required}: acknowledged commits may exist only there"
            ),
            Unsafe::Behind { standby } => write!(
                f,
                "synchronous standby node {standby} has WAL the candidate lacks"
            ),
        }
    }
}

/// Whether `candidate` (its timeline and WAL) is sure to hold every
/// acknowledged commit. `standbys` are every registered standby but the
/// candidate; names listed that match no registered standby count as out
/// of sight (they may be other replicas that acknowledged commits).
pub fn candidate_holds_every_commit(
    spec: &SyncSpec,
    candidate: (NodeId, &str, u32, Lsn),
    standbys: &[SyncView<'_>],
) -> Result<(), Unsafe> {
    let (_, cname, ctli, clsn) = candidate;
    let listed: Vec<&SyncView> = standbys.iter().filter(|s| spec.lists(s.name)).collect();
    let unregistered = spec
        .names
        .iter()
        .filter(|n| {
            *n != "*"
                && !n.eq_ignore_ascii_case(cname)
                && !standbys.iter().any(|s| n.eq_ignore_ascii_case(s.name))
        })
        .count();
    // The candidate, when listed, is a visible member itself.
    let missing = listed.iter().filter(|s| !s.visible).count() + unregistered;
    if missing >= spec.required {
        return Err(Unsafe::TooFewVisible {
            missing,
            required: spec.required,
        });
    }
    for s in listed.iter().filter(|s| s.visible) {
        let ahead = s.timeline > ctli || (s.timeline == ctli && s.lsn > clsn);
        if ahead {
            return Err(Unsafe::Behind { standby: s.id });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: NodeId, name: &'static str, visible: bool, lsn: Lsn) -> SyncView<'static> {
        SyncView {
            id,
            name,
            visible,
            timeline: 1,
            lsn,
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(SyncSpec::parse(""), None);
        assert_eq!(
            SyncSpec::parse("s1"),
            Some(SyncSpec {
                required: 1,
                names: vec!["s1".into()]
            })
        );
        assert_eq!(
            SyncSpec::parse("FIRST 2 (s1, \"s2\", s3)")
                .unwrap()
                .required,
            2
        );
        assert_eq!(
            SyncSpec::parse("ANY 1 (s1,s2)").unwrap().names,
            vec!["s1".to_string(), "s2".to_string()]
        );
        assert_eq!(SyncSpec::parse("2 (a, b)").unwrap().required, 2);
        assert_eq!(SyncSpec::parse("first 1 (a)").unwrap().required, 1);
        // Unparsable: the strictest reading.
        assert_eq!(
            SyncSpec::parse("SOME x (a)").unwrap().names,
            vec!["*".to_string()]
        );
        assert!(SyncSpec::parse("*").unwrap().lists("anything"));
    }

    #[test]
    fn the_sync_standby_out_of_sight_stops_a_promotion() {
        // FIRST 1 (s1): the majority side {s2, s3, witness} cannot see s1.
        let spec = SyncSpec::parse("FIRST 1 (s1)").unwrap();
        let standbys = [v(2, "s1", false, 100), v(4, "s3", true, 50)];
        assert_eq!(
            candidate_holds_every_commit(&spec, (3, "s2", 1, 60), &standbys),
            Err(Unsafe::TooFewVisible {
                missing: 1,
                required: 1
            })
        );
        // s1 visible: the candidate must have its WAL.
        let standbys = [v(2, "s1", true, 100), v(4, "s3", true, 50)];
        assert_eq!(
            candidate_holds_every_commit(&spec, (3, "s2", 1, 60), &standbys),
            Err(Unsafe::Behind { standby: 2 })
        );
        assert_eq!(
            candidate_holds_every_commit(&spec, (3, "s2", 1, 100), &standbys),
            Ok(())
        );
    }

    #[test]
    fn the_candidate_itself_may_be_the_sync_standby() {
        // s1 is the candidate; commits were acknowledged by it.
        let spec = SyncSpec::parse("s1").unwrap();
        let standbys = [v(3, "s2", true, 10)];
        assert_eq!(
            candidate_holds_every_commit(&spec, (2, "s1", 1, 100), &standbys),
            Ok(())
        );
    }

    #[test]
    fn any_k_allows_k_minus_one_missing() {
        let spec = SyncSpec::parse("ANY 2 (a, b, c)").unwrap();
        let standbys = [v(2, "a", false, 100), v(4, "c", true, 80)];
        assert_eq!(
            candidate_holds_every_commit(&spec, (3, "b", 1, 90), &standbys),
            Ok(())
        );
        let two_missing = [v(2, "a", false, 100), v(4, "c", false, 80)];
        assert!(candidate_holds_every_commit(&spec, (3, "b", 1, 90), &two_missing).is_err());
        // Unregistered listed names count as out of sight.
        let spec = SyncSpec::parse("FIRST 1 (pg_receivewal)").unwrap();
        assert!(candidate_holds_every_commit(&spec, (3, "b", 1, 90), &standbys).is_err());
    }
}
