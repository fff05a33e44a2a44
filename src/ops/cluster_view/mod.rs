//! The cluster as seen from one node: every node probed at once, the
//! Status and Upstream cells made from the probes, and `cluster show`'s
//! report with its renderings. `repmgr cluster show` and `service status`
//! print from here, and repmgrd serves the same report, so none of it
//! belongs to the CLI.

mod cells;
mod probe;
mod report;

pub use cells::{status_cell, upstream_cell};
pub use probe::{probe_all, probe_all_reusing, probe_all_with, Probe, Reach};
pub use report::{
    cluster_report, cluster_report_reusing, render_csv, render_issues, render_json, render_table,
    report, ShowReport, ShowRow,
};
