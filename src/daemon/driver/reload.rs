//! SIGHUP: the configuration re-read while repmgrd runs.

use super::{recorder, settings, Driver};
use crate::conninfo::ConnInfo;
use crate::daemon::core::Settings;

impl Driver {
    /// SIGHUP: re-read repmgr.conf, apply what may change at run time, and
    /// reopen the log file (logrotate). The core gets the new settings.
    pub(super) fn reload(&mut self) -> Option<Settings> {
        crate::log_notice!("received SIGHUP: reloading configuration and reopening log file");
        let _ = crate::logging::sink().reopen();
        let fresh = match crate::config::load_file(&self.loaded.path) {
            Ok(l) => l,
            Err(e) => {
                crate::log_warning!("configuration file not reloaded: it contains errors");
                for m in &e.messages {
                    crate::log_detail!("{m}");
                }
                return None;
            }
        };
        let (old, new) = (&self.loaded.config, &fresh.config);
        if old.node_id != new.node_id || old.node_name != new.node_name {
            crate::log_warning!("\"node_id\" and \"node_name\" cannot be changed at run time; configuration not reloaded");
            return None;
        }
        let conninfo = match ConnInfo::parse(&new.conninfo) {
            Ok(ci) => ci,
            Err(e) => {
                crate::log_warning!(
                    "new \"conninfo\" is invalid ({e}); configuration not reloaded"
                );
                return None;
            }
        };
        crate::logging::set_level(new.log_level);
        if new.log_facility != old.log_facility {
            crate::logging::set_facility(&new.log_facility, c"repmgrd");
        }
        if new.log_file != old.log_file {
            let res = if new.log_file.is_empty() {
                crate::logging::sink().to_stderr();
                Ok(())
            } else {
                crate::logging::sink().open(&new.log_file)
            };
            if let Err(e) = res {
                crate::log_warning!("unable to open log file \"{}\": {e}", new.log_file);
            }
        }
        if conninfo != self.conninfo {
            self.local = None;
        }
        let lease_before = settings(self.cfg(), self.is_witness).lease_ms();
        self.conninfo = conninfo;
        self.loaded = fresh;
        // The failover mode and timing may have changed: publish anew.
        self.recorder.send(recorder::Write::Config(Box::new((
            self.cfg().clone(),
            self.conninfo.clone(),
        ))));
        self.publish();
        crate::log_notice!("configuration file reloaded");
        // The new timing is checked as at start (and against what the
        // others published); a shorter lease does not shorten a promise
        // already made.
        let lease = settings(self.cfg(), self.is_witness).lease_ms();
        if lease != lease_before {
            crate::log_notice!(
                "the lease changes from {lease_before} ms to {lease} ms; promises already made are kept for as long as they were made"
            );
        }
        self.check_timing();
        let (id, name) = (self.node_id(), self.cfg().node_name.clone());
        self.event(
            "repmgrd_reload",
            true,
            format!("repmgrd on node \"{name}\" (ID: {id}) reloaded its configuration"),
            None,
            None,
        );
        Some(settings(self.cfg(), self.is_witness))
    }
}
