//! The action words: which `FAMILY ACTION` pairs exist, what they
//! resolve to, and the errors for words that resolve to nothing.

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PrimaryRegister,
    PrimaryUnregister,
    StandbyClone,
    StandbyRegister,
    StandbyUnregister,
    StandbyPromote,
    StandbyFollow,
    StandbySwitchover,
    WitnessRegister,
    WitnessUnregister,
    NodeStatus,
    NodeCheck,
    NodeRejoin,
    NodeService,
    NodeControl,
    ClusterShow,
    ClusterEvent,
    ClusterMatrix,
    ClusterCrosscheck,
    ClusterCleanup,
    ServiceStatus,
    ServicePause,
    ServiceUnpause,
    DaemonStart,
    DaemonStop,
}

impl Action {
    /// `family action` as repmgr spells it, for messages and help.
    pub fn name(self) -> &'static str {
        use Action::*;
        match self {
            PrimaryRegister => "primary register",
            PrimaryUnregister => "primary unregister",
            StandbyClone => "standby clone",
            StandbyRegister => "standby register",
            StandbyUnregister => "standby unregister",
            StandbyPromote => "standby promote",
            StandbyFollow => "standby follow",
            StandbySwitchover => "standby switchover",
            WitnessRegister => "witness register",
            WitnessUnregister => "witness unregister",
            NodeStatus => "node status",
            NodeCheck => "node check",
            NodeRejoin => "node rejoin",
            NodeService => "node service",
            NodeControl => "node control",
            ClusterShow => "cluster show",
            ClusterEvent => "cluster event",
            ClusterMatrix => "cluster matrix",
            ClusterCrosscheck => "cluster crosscheck",
            ClusterCleanup => "cluster cleanup",
            ServiceStatus => "service status",
            ServicePause => "service pause",
            ServiceUnpause => "service unpause",
            DaemonStart => "daemon start",
            DaemonStop => "daemon stop",
        }
    }

    /// Actions that take an optional positional argument (a host name).
    pub(super) fn takes_host_argument(self) -> bool {
        matches!(self, Action::StandbyClone | Action::StandbyFollow)
    }

    /// Whether `--json` renders this action's report; elsewhere it is
    /// refused, as a script reading stdout as JSON would get text.
    pub(super) fn has_json(self) -> bool {
        use Action::*;
        matches!(
            self,
            ClusterShow | ClusterEvent | NodeStatus | NodeCheck | ServiceStatus
        )
    }
}

/// Families and their actions, for resolving words and for hints.
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("primary", &["register", "unregister", "check", "status"]),
    (
        "standby",
        &[
            "clone",
            "register",
            "unregister",
            "promote",
            "follow",
            "switchover",
            "check",
            "status",
        ],
    ),
    ("witness", &["register", "unregister"]),
    ("node", &["status", "check", "rejoin", "service", "control"]),
    (
        "cluster",
        &["show", "event", "matrix", "crosscheck", "cleanup"],
    ),
    ("service", &["status", "pause", "unpause"]),
    ("daemon", &["start", "stop", "status", "pause", "unpause"]),
];

/// Resolves the action words (case-insensitive, with repmgr's aliases).
pub fn resolve_action(family: &str, action: &str) -> Option<Action> {
    use Action::*;
    let f = family.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let f = if f == "master" {
        "primary".to_string()
    } else {
        f
    };
    Some(match (f.as_str(), a.as_str()) {
        ("primary", "register") => PrimaryRegister,
        ("primary", "unregister") => PrimaryUnregister,
        ("primary" | "standby", "check") => NodeCheck,
        ("primary" | "standby", "status") => NodeStatus,
        ("standby", "clone") => StandbyClone,
        ("standby", "register") => StandbyRegister,
        ("standby", "unregister") => StandbyUnregister,
        ("standby", "promote") => StandbyPromote,
        ("standby", "follow") => StandbyFollow,
        ("standby", "switchover") => StandbySwitchover,
        ("witness", "register") => WitnessRegister,
        ("witness", "unregister") => WitnessUnregister,
        ("node", "status") => NodeStatus,
        ("node", "check") => NodeCheck,
        ("node", "rejoin") => NodeRejoin,
        ("node", "service") => NodeService,
        ("node", "control") => NodeControl,
        ("cluster", "show") => ClusterShow,
        ("cluster", "event" | "events") => ClusterEvent,
        ("cluster", "matrix") => ClusterMatrix,
        ("cluster", "crosscheck") => ClusterCrosscheck,
        ("cluster", "cleanup") => ClusterCleanup,
        ("service" | "daemon", "status") => ServiceStatus,
        ("service" | "daemon", "pause") => ServicePause,
        ("service" | "daemon", "unpause") => ServiceUnpause,
        ("daemon", "start") => DaemonStart,
        ("daemon", "stop") => DaemonStop,
        _ => return None,
    })
}

/// Whether `word` names a command family repmgr knows (`master` too).
pub(super) fn is_family(word: &str) -> bool {
    let f = word.to_ascii_lowercase();
    f == "master" || FAMILIES.iter().any(|(n, _)| *n == f)
}
