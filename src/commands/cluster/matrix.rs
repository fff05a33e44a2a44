//! `repmgr cluster matrix` and `repmgr cluster crosscheck`: who can connect
//! to whom (repmgr-action-cluster.c, repmgr 5.x).
//!
//! `cluster matrix` fills this node's row by connecting to every node, and
//! every other reachable node's row from `repmgr cluster show --csv --terse`
//! run there over ssh. `cluster crosscheck` runs `cluster matrix --csv
//! --terse` on every node and merges the views: a cell is the best status any
//! view has for it (0 over -1 over -2).
//!
//! Cells are repmgr's codes: 0 connected (`*`), -1 failed (`x`), -2 unknown
//! (`?`, e.g. the row of a node whose PostgreSQL is down or which ssh cannot
//! reach). Exit status as repmgr's: 25 (ERR_NODE_STATUS) when a connection
//! failed, which overrides 12 (ERR_BAD_SSH) when a node could not be reached
//! over ssh (or 15 when its output made no sense); 0 otherwise. As in
//! repmgr, `cluster matrix --csv` also counts unknown cells as failures (25).
//!
//! Unlike repmgr, which asks the nodes one after the other, every node is
//! probed and every remote command runs at the same time, over one
//! multiplexed ssh connection per host.

use std::time::Duration;

use crate::commands::{parse_conninfo, Ctx, APP_NAME};
use crate::config::Config;
use crate::db::{self, nodes::NodeRecord};
use crate::error::{Error, ExitCode, Result};
use crate::remote::{self, Ssh};

/// A connection works.
pub const OK: i32 = 0;
/// A connection failed.
pub const FAILED: i32 = -1;
/// Not known (nobody could ask).
pub const UNKNOWN: i32 = -2;

/// How long one remote `cluster show` / `cluster matrix` may take.
const REMOTE_LIMIT: Duration = Duration::from_secs(120);

/// One view of the cluster: `cells[row][col]` is what node `ids[row]` gets
/// when connecting to node `ids[col]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub ids: Vec<i32>,
    pub names: Vec<String>,
    pub cells: Vec<Vec<i32>>,
}

impl Grid {
    pub fn unknown(ids: Vec<i32>, names: Vec<String>) -> Grid {
        let n = ids.len();
        Grid {
            ids,
            names,
            cells: vec![vec![UNKNOWN; n]; n],
        }
    }

    fn index(&self, id: i32) -> Option<usize> {
        self.ids.iter().position(|&i| i == id)
    }

    /// Sets (from, to); ids not in the grid are ignored, as repmgr does.
    pub fn set(&mut self, from: i32, to: i32, status: i32) {
        if let (Some(r), Some(c)) = (self.index(from), self.index(to)) {
            self.cells[r][c] = status;
        }
    }

    /// Merges views: each cell is the best status any view has.
    pub fn merge(views: &[Grid]) -> Option<Grid> {
        let mut out = views.first()?.clone();
        for v in &views[1..] {
            for (r, row) in v.cells.iter().enumerate() {
                for (c, &s) in row.iter().enumerate() {
                    if s > out.cells[r][c] {
                        out.cells[r][c] = s;
                    }
                }
            }
        }
        Some(out)
    }

    /// repmgr's table: print_status_header's header and rule ("Name", "ID"
    /// and one column per node id, each as wide as its title), then
    /// ` name | id ` and `| c ` per cell.
    pub fn render(&self) -> String {
        let name_w = self
            .names
            .iter()
            .map(|n| n.chars().count())
            .chain(std::iter::once(4))
            .max()
            .unwrap_or(4);
        let col_titles: Vec<String> = self.ids.iter().map(i32::to_string).collect();
        let id_w = col_titles
            .iter()
            .map(String::len)
            .chain(std::iter::once(2))
            .max()
            .unwrap_or(2);
        let mut headers = vec![("Name".to_string(), name_w), ("ID".to_string(), id_w)];
        headers.extend(col_titles.iter().map(|t| (t.clone(), t.len())));

        let mut out = String::new();
        for (i, (title, w)) in headers.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { " | " });
            out.push_str(&format!("{title:<w$}"));
        }
        out.push_str("\n-");
        for (i, (_, w)) in headers.iter().enumerate() {
            out.push_str(&"-".repeat(*w));
            out.push_str(if i + 1 < headers.len() { "-+-" } else { "-" });
        }
        out.push('\n');
        for (r, row) in self.cells.iter().enumerate() {
            out.push_str(&format!(
                " {:<name_w$} | {:<id_w$} ",
                self.names[r], self.ids[r]
            ));
            for (c, &s) in row.iter().enumerate() {
                let w = col_titles[c].len();
                out.push_str(&format!("| {:<w$} ", symbol(s)));
            }
            out.push('\n');
        }
        out
    }

    /// `from_id,to_id,status` per cell, row by row.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        for (r, row) in self.cells.iter().enumerate() {
            for (c, &s) in row.iter().enumerate() {
                out.push_str(&format!("{},{},{s}\n", self.ids[r], self.ids[c]));
            }
        }
        out
    }

    fn any(&self, f: impl Fn(i32) -> bool) -> bool {
        self.cells.iter().flatten().any(|&s| f(s))
    }
}

pub fn symbol(status: i32) -> char {
    match status {
        OK => '*',
        FAILED => 'x',
        _ => '?',
    }
}

/// What building a view found besides the grid.
#[derive(Debug, Default)]
struct Problems {
    warnings: Vec<String>,
    /// 12 (a node not reachable over ssh) or 15 (unparseable output).
    code: Option<ExitCode>,
}

impl Problems {
    fn ssh(&mut self, id: i32) {
        self.warnings
            .push(format!("node {id} inaccessible via SSH"));
        if self.code.is_none() {
            self.code = Some(ExitCode::BadSsh);
        }
    }

    fn unparseable(&mut self, id: i32, output: &str) {
        self.warnings.push(format!(
            "unable to parse --csv output for node {id}; output returned was:\n\"{output}\""
        ));
        self.code = Some(ExitCode::Internal);
    }
}

/// The registered nodes, read through the local node.
fn registered_nodes(ctx: &Ctx) -> Result<Vec<NodeRecord>> {
    crate::log_info!("connecting to database");
    let mut conn = ctx.connect_local()?;
    if !db::schema::exists(&mut conn)? {
        return Err(
            Error::config("the repmgr metadata schema was not found on this node")
                .hint("run \"repmgr primary register\" on the primary first"),
        );
    }
    let nodes = db::nodes::all(&mut conn)?;
    drop(conn);
    if nodes.is_empty() {
        return Err(Error::config("unable to retrieve any node records"));
    }
    Ok(nodes)
}

/// `-L <level>` for the remote repmgr: the level given here, else NOTICE.
fn remote_log_level(ctx: &Ctx) -> String {
    let level = ctx.opts.log_level.as_deref().unwrap_or("NOTICE");
    format!("-L {}", crate::process::shell_quote(level))
}

/// Whether this node can open a session on `n` (repmgr: CONNECTION_OK).
fn can_connect(n: &NodeRecord) -> bool {
    match parse_conninfo(&n.conninfo, "conninfo") {
        Ok(ci) => db::connect::probe(&ci, APP_NAME).is_ok(),
        Err(_) => false,
    }
}

/// Parses `repmgr cluster show --csv` output (`node_id,availability,…`)
/// into the row of node `from`.
fn apply_show_csv(grid: &mut Grid, from: i32, output: &str, problems: &mut Problems) {
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split(',').map(|s| s.trim().parse::<i32>());
        match (f.next(), f.next()) {
            (Some(Ok(to)), Some(Ok(avail))) => {
                grid.set(from, to, if avail == FAILED { FAILED } else { OK });
            }
            _ => {
                problems.unparseable(from, output);
                return;
            }
        }
    }
}

/// Parses `repmgr cluster matrix --csv` output (`from,to,status`) into a view.
fn apply_matrix_csv(grid: &mut Grid, from: i32, output: &str, problems: &mut Problems) {
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<_> = line.split(',').map(|s| s.trim().parse::<i32>()).collect();
        match f.as_slice() {
            [Ok(r), Ok(c), Ok(s)] => grid.set(*r, *c, (*s).clamp(UNKNOWN, OK)),
            _ => {
                problems.unparseable(from, output);
                return;
            }
        }
    }
}

/// Output that is empty or starts with an empty line: repmgr's test for
/// "probably an ssh error".
fn no_output(s: &str) -> bool {
    s.is_empty() || s.starts_with('\n')
}

/// This node's matrix: its own row by connecting, the other rows by
/// `cluster show --csv --terse` on each node it could connect to.
fn build_matrix(ctx: &Ctx, cfg: &Config, ssh: &Ssh, nodes: &[NodeRecord]) -> (Grid, Problems) {
    let me = cfg.node_id.unwrap_or_default();
    let mut grid = Grid::unknown(
        nodes.iter().map(|n| n.node_id).collect(),
        nodes.iter().map(|n| n.node_name.clone()).collect(),
    );
    let level = remote_log_level(ctx);
    // (connected, remote output: None = not asked, Some(None) = ssh failed)
    let results: Vec<(bool, Option<Option<String>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                let level = &level;
                s.spawn(move || {
                    if !can_connect(n) {
                        return (false, None);
                    }
                    if n.node_id == me {
                        return (true, None);
                    }
                    let cmd = format!(
                        "{} cluster show --csv --terse {level}",
                        remote::remote_repmgr(cfg, n)
                    );
                    crate::log_debug!("build_cluster_matrix(): executing:\n  {cmd}");
                    let out = remote::node_host(n)
                        .and_then(|host| ssh.run(&host, &cmd, REMOTE_LIMIT))
                        .map(|o| o.stdout)
                        .map_err(|e| crate::log_debug!("node {}: {}", n.node_id, e.message()))
                        .ok();
                    (true, Some(out))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((false, None)))
            .collect()
    });
    let mut problems = Problems::default();
    for (n, (connected, remote)) in nodes.iter().zip(results) {
        grid.set(me, n.node_id, if connected { OK } else { FAILED });
        match remote {
            None => {}
            Some(Some(out)) if !no_output(&out) => {
                apply_show_csv(&mut grid, n.node_id, &out, &mut problems)
            }
            Some(_) => problems.ssh(n.node_id),
        }
    }
    (grid, problems)
}

fn print_warnings(ctx: &Ctx, problems: &Problems) {
    if problems.warnings.is_empty() || ctx.opts.terse {
        return;
    }
    crate::log_warning!("following problems detected:");
    let list: String = problems
        .warnings
        .iter()
        .map(|w| format!("  {w}\n"))
        .collect();
    // repmgr's print_item_list: on stderr, under the WARNING line
    eprint!("{list}");
}

fn finish(failed: bool, problems: &Problems) -> Result<()> {
    if failed {
        return Err(Error::silent(ExitCode::NodeStatus));
    }
    match problems.code {
        Some(code) => Err(Error::silent(code)),
        None => Ok(()),
    }
}

/// `repmgr cluster matrix [--csv]`.
pub fn matrix(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let nodes = registered_nodes(ctx)?;
    let ssh = Ssh::new(cfg, ctx.opts.remote_user.as_deref()).multiplexed();
    let (grid, problems) = build_matrix(ctx, cfg, &ssh, &nodes);
    drop(ssh);
    let failed = if ctx.opts.csv {
        print!("{}", grid.csv());
        grid.any(|s| s != OK)
    } else {
        print!("{}", grid.render());
        print_warnings(ctx, &problems);
        grid.any(|s| s == FAILED)
    };
    finish(failed, &problems)
}

/// `repmgr cluster crosscheck [--csv]`.
pub fn crosscheck(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.node_config(false)?;
    let nodes = registered_nodes(ctx)?;
    let me = cfg.node_id.unwrap_or_default();
    let ids: Vec<i32> = nodes.iter().map(|n| n.node_id).collect();
    let names: Vec<String> = nodes.iter().map(|n| n.node_name.clone()).collect();
    let ssh = Ssh::new(cfg, ctx.opts.remote_user.as_deref()).multiplexed();
    let level = remote_log_level(ctx);

    // Every node's matrix at once: this node's in-process, the others over ssh.
    let views: Vec<(Grid, Problems)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (ssh, level, nodes) = (&ssh, &level, &nodes);
                let (ids, names) = (ids.clone(), names.clone());
                s.spawn(move || {
                    let mut problems = Problems::default();
                    if n.node_id == me {
                        // Its own problems show in the other views; as repmgr,
                        // only the merged grid counts.
                        let (grid, _) = build_matrix(ctx, cfg, ssh, nodes);
                        return (grid, problems);
                    }
                    let mut grid = Grid::unknown(ids, names);
                    let cmd = format!(
                        "{} cluster matrix --csv --terse {level}",
                        remote::remote_repmgr(cfg, n)
                    );
                    crate::log_debug!("build_cluster_crosscheck(): executing\n  {cmd}");
                    let out = remote::node_host(n)
                        .and_then(|host| ssh.run(&host, &cmd, REMOTE_LIMIT))
                        .map(|o| o.stdout)
                        .unwrap_or_default();
                    if no_output(&out) {
                        problems.ssh(n.node_id);
                    } else {
                        apply_matrix_csv(&mut grid, n.node_id, &out, &mut problems);
                    }
                    (grid, problems)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        Grid::unknown(ids.clone(), names.clone()),
                        Problems::default(),
                    )
                })
            })
            .collect()
    });
    drop(ssh);

    let mut problems = Problems::default();
    let mut grids = Vec::new();
    for (g, p) in views {
        grids.push(g);
        problems.warnings.extend(p.warnings);
        problems.code = match (problems.code, p.code) {
            (Some(ExitCode::Internal), _) | (_, Some(ExitCode::Internal)) => {
                Some(ExitCode::Internal)
            }
            (a, b) => a.or(b),
        };
    }
    let merged = Grid::merge(&grids).unwrap_or_else(|| Grid::unknown(ids, names));
    if ctx.opts.csv {
        print!("{}", merged.csv());
    } else {
        print!("{}", merged.render());
        print_warnings(ctx, &problems);
    }
    finish(merged.any(|s| s == FAILED), &problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(cells: Vec<Vec<i32>>) -> Grid {
        Grid {
            ids: vec![1, 2, 3],
            names: vec!["node1".into(), "node2".into(), "node3".into()],
            cells,
        }
    }

    #[test]
    fn renders_like_repmgr_5() {
        let g = grid(vec![vec![0, 0, -1], vec![0, 0, -1], vec![-2, -2, -2]]);
        assert_eq!(
            g.render(),
            " Name  | ID | 1 | 2 | 3\n\
             -------+----+---+---+---\n \
             node1 | 1  | * | * | x \n \
             node2 | 2  | * | * | x \n \
             node3 | 3  | ? | ? | ? \n"
        );
    }

    #[test]
    fn wide_ids_and_names() {
        let g = Grid {
            ids: vec![1, 100],
            names: vec!["a".into(), "a-long-name".into()],
            cells: vec![vec![0, 0], vec![-2, -1]],
        };
        assert_eq!(
            g.render(),
            " Name        | ID  | 1 | 100\n\
             -------------+-----+---+-----\n \
             a           | 1   | * | *   \n \
             a-long-name | 100 | ? | x   \n"
        );
    }

    #[test]
    fn csv_lines() {
        let g = grid(vec![vec![0, 0, -1], vec![0, 0, -1], vec![-2, -2, -2]]);
        assert_eq!(
            g.csv(),
            "1,1,0\n1,2,0\n1,3,-1\n2,1,0\n2,2,0\n2,3,-1\n3,1,-2\n3,2,-2\n3,3,-2\n"
        );
    }

    #[test]
    fn merge_takes_the_best_status() {
        let a = grid(vec![vec![0, 0, -1], vec![-2, -2, -2], vec![-2, -2, -2]]);
        let b = grid(vec![vec![-2, -2, -2], vec![0, 0, 0], vec![-1, -2, -2]]);
        let c = grid(vec![vec![-2, -2, -2], vec![-2, -2, -2], vec![0, 0, -2]]);
        let m = Grid::merge(&[a, b, c]).unwrap();
        assert_eq!(m.cells, vec![vec![0, 0, -1], vec![0, 0, 0], vec![0, 0, -2]]);
    }

    #[test]
    fn parses_cluster_show_csv() {
        let mut g = Grid::unknown(vec![1, 2, 3], vec!["a".into(), "b".into(), "c".into()]);
        let mut p = Problems::default();
        apply_show_csv(&mut g, 2, "1,0,0\n2,0,1\n3,-1,-1\n", &mut p);
        assert_eq!(g.cells[1], vec![0, 0, -1]);
        assert!(p.code.is_none());
        apply_show_csv(&mut g, 3, "garbage\n", &mut p);
        assert_eq!(p.code, Some(ExitCode::Internal));
        assert_eq!(g.cells[2], vec![-2, -2, -2]);
    }

    #[test]
    fn parses_matrix_csv() {
        let mut g = Grid::unknown(vec![1, 2], vec!["a".into(), "b".into()]);
        let mut p = Problems::default();
        apply_matrix_csv(&mut g, 2, "1,1,0\n1,2,-1\n2,1,0\n2,2,0\n", &mut p);
        assert_eq!(g.cells, vec![vec![0, -1], vec![0, 0]]);
        assert!(no_output("") && no_output("\n1,1,0") && !no_output("1,1,0\n"));
    }
}
