//! Events: a row in `repmgr.events` (when a writable primary connection is
//! at hand) and the user's `event_notification_command`, filtered by
//! `event_notifications`, with repmgr's placeholders.
//!
//! Unlike repmgr, the notification command runs with a deadline so a hung
//! hook cannot hang the command (or, later, a failover).

use std::time::Duration;

use crate::db::Sql;

use crate::config::Config;
use crate::db;
use crate::process;

/// How long a notification command may run before it is stopped.
pub const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The context of one event, for the placeholders.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub node_id: i32,
    pub node_name: &'a str,
    pub event: &'a str,
    pub successful: bool,
    pub details: String,
    /// `%p`: primary (or former primary) node ID, when meaningful.
    pub primary_id: Option<i32>,
    /// `%c`: primary conninfo, when meaningful.
    pub conninfo: Option<String>,
}

impl<'a> Event<'a> {
    /// A successful event about the node this repmgr.conf describes.
    pub fn for_node(cfg: &'a Config, event: &'a str, details: String) -> Event<'a> {
        Event {
            node_id: cfg.node_id.unwrap_or_default(),
            node_name: &cfg.node_name,
            event,
            successful: true,
            details,
            primary_id: None,
            conninfo: None,
        }
    }
}

/// Records the event on `conn` (if given) and runs the notification hook.
/// Failures to record are logged, not fatal: the action itself is done.
pub fn record<C: Sql>(conn: Option<&mut C>, config: &Config, ev: &Event<'_>) {
    let mut timestamp = None;
    if let Some(c) = conn {
        match write(c, ev) {
            Ok(ts) => timestamp = Some(ts),
            Err(e) => {
                crate::log_warning!("unable to record event \"{}\": {}", ev.event, e.reason())
            }
        }
    }
    notify(config, ev, timestamp.as_deref());
}

/// Writes the event row (inside the caller's transaction, if any); run
/// [`notify`] after the commit so a hook never reports a rolled-back change.
pub fn write<C: Sql>(conn: &mut C, ev: &Event<'_>) -> crate::error::Result<String> {
    db::events::insert(conn, ev.node_id, ev.event, ev.successful, &ev.details)
}

/// Runs `event_notification_command` if set and the event passes the filter.
/// `timestamp` is the recorded event's; the local time stands in otherwise.
pub fn notify(config: &Config, ev: &Event<'_>, timestamp: Option<&str>) {
    let template = config.event_notification_command.trim();
    if template.is_empty() || !wanted(&config.event_notifications, ev.event) {
        return;
    }
    let ts = timestamp.map(str::to_string).unwrap_or_else(|| {
        chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S%.6f%:z")
            .to_string()
    });
    let command = expand(template, ev, &ts);
    crate::log_info!("executing notification command for event \"{}\"", ev.event);
    match process::run(
        process::shell(&command),
        NOTIFICATION_TIMEOUT,
        "event notification command",
    ) {
        Ok(out) if out.success() => {}
        Ok(out) => {
            crate::log_warning!(
                "notification command returned {}",
                process::describe_status(&out.status)
            );
            crate::log_detail!("command: {command}\n{}", out.stderr.trim());
        }
        Err(e) => {
            crate::logging::log_error_report(&e.with_code(crate::error::ExitCode::LocalCommand))
        }
    }
}

/// Like [`notify`], on a thread of its own: repmgrd never waits for a hook
/// (which may be slow or hang until its deadline) in the middle of a failover.
pub fn notify_in_background(config: &Config, ev: &Event<'_>, timestamp: Option<&str>) {
    if config.event_notification_command.trim().is_empty()
        || !wanted(&config.event_notifications, ev.event)
    {
        return;
    }
    let config = config.clone();
    let (node_name, event, details) = (
        ev.node_name.to_string(),
        ev.event.to_string(),
        ev.details.clone(),
    );
    let (node_id, successful, primary_id, conninfo) = (
        ev.node_id,
        ev.successful,
        ev.primary_id,
        ev.conninfo.clone(),
    );
    let timestamp = timestamp.map(str::to_string);
    let spawned = std::thread::Builder::new()
        .name("event-notify".into())
        .spawn(move || {
            let ev = Event {
                node_id,
                node_name: &node_name,
                event: &event,
                successful,
                details,
                primary_id,
                conninfo,
            };
            notify(&config, &ev, timestamp.as_deref());
        });
    if let Err(e) = spawned {
        crate::log_warning!("unable to run the notification command: {e}");
    }
}

/// `event_notifications` empty means every event.
fn wanted(filter: &[String], event: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| f == event)
}

/// Expands `%n %a %e %s %t %d %p %c %%` as repmgr does, through the one
/// expander ([`crate::hooks`]): names, details and conninfo are escaped
/// for the shell.
pub fn expand(template: &str, ev: &Event<'_>, timestamp: &str) -> String {
    use crate::hooks::{cluster, plain};
    crate::hooks::expand(
        template,
        &[
            ('n', plain(ev.node_id)),
            ('a', cluster(ev.node_name)),
            ('e', plain(ev.event)),
            ('s', plain(if ev.successful { 1 } else { 0 })),
            ('t', plain(timestamp)),
            ('d', cluster(ev.details.clone())),
            ('p', ev.primary_id.and_then(plain)),
            ('c', cluster(ev.conninfo.clone().unwrap_or_default())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let ev = Event {
            node_id: 2,
            node_name: "node2",
            event: "standby_register",
            successful: true,
            details: "ok done".into(),
            primary_id: Some(1),
            conninfo: Some("host=a".into()),
        };
        assert_eq!(
            expand("x %n %a %e %s '%t' '%d' %p '%c' 100%% %z", &ev, "T"),
            "x 2 'node2' standby_register 1 'T' 'ok done' 1 'host=a' 100% %z"
        );
        let ev = Event {
            primary_id: None,
            successful: false,
            ..ev
        };
        assert_eq!(expand("%p|%s|%", &ev, "T"), "|0|%");
    }

    #[test]
    fn filter() {
        assert!(wanted(&[], "anything"));
        let f = vec!["primary_register".to_string()];
        assert!(wanted(&f, "primary_register"));
        assert!(!wanted(&f, "standby_register"));
    }
}
