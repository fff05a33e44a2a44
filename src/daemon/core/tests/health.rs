//! The health view (`Core::health`): what /primary and /replica answer
//! follows the fence rules, and turns a primary away no later than the
//! core begins to fence it.

use super::*;

#[test]
fn a_primary_is_reported_writable_only_while_its_lease_holds() {
    let mut s = Script::new(
        Settings {
            reconnect_attempts: 6,
            ..settings(1, Failover::Automatic)
        },
        Persisted::default(),
        facts(false, three(true, true)),
    );
    // Before any voter answered: no lease yet, so not vouched for.
    s.run_to(100);
    let h = s.core.health(Time(s.now));
    assert_eq!(h.role, HealthRole::Primary);
    assert!(!h.writable && h.isolated, "{h:?}");
    s.acks = vec![2, 3];
    s.run_to(3_000);
    let h = s.core.health(Time(s.now));
    assert!(h.writable && !h.isolated && !h.fenced, "{h:?}");
    // The voters go silent: unwritable no later than the first fence.
    s.acks.clear();
    let mut unwritable_at = None;
    let mut fenced_at = None;
    while s.now < 12_000 {
        s.run_to(s.now + 100);
        let h = s.core.health(Time(s.now));
        if !h.writable && unwritable_at.is_none() {
            unwritable_at = Some(s.now);
            assert!(h.isolated, "{h:?}");
        }
        if fenced_at.is_none() && !s.fences().is_empty() {
            fenced_at = Some(s.now);
        }
    }
    let (u, f) = (unwritable_at.unwrap(), fenced_at.unwrap());
    assert!(u <= f, "reported unwritable at {u} ms, fenced at {f} ms");
    let h = s.core.health(Time(s.now));
    assert!(!h.writable && h.fenced, "{h:?}");
}

#[test]
fn a_superseded_primary_is_never_reported_writable() {
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    s.run_to(1_500);
    assert!(s.core.health(Time(s.now)).writable);
    s.feed(Input::Heartbeat {
        from: 3,
        sent: Time(s.now),
        reply: HeartbeatReply::Superseded {
            term: 5,
            by: Some(2),
        },
    });
    let h = s.core.health(Time(s.now));
    assert_eq!(h.superseded, Some(5));
    assert!(!h.writable && h.fenced, "{h:?}");
    // Its voters answering again changes nothing.
    s.run_to(5_000);
    assert!(!s.core.health(Time(s.now)).writable);
}

#[test]
fn a_primary_that_does_not_fence_itself_is_writable_without_a_lease() {
    // No automatic candidate: the lease is not needed, so nor is it asked
    // of the health view (repmgr's behaviour with failover=manual).
    let mut s = Script::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        facts(false, three(false, false)),
    );
    s.run_to(10_000);
    let h = s.core.health(Time(s.now));
    assert!(h.writable && !h.isolated, "{h:?}");
    // A server whose configured default is read-only is not writable.
    let mut f = facts(false, three(false, false));
    f.read_only_fenced = true;
    s.local = Some(f);
    s.run_to(12_000);
    assert!(!s.core.health(Time(s.now)).writable);
    // Nor is one that stopped answering.
    s.local = None;
    s.run_to(14_000);
    let h = s.core.health(Time(s.now));
    assert!(!h.writable && !h.running, "{h:?}");
}

#[test]
fn a_standby_is_a_replica_while_its_wal_receiver_streams() {
    let mut f = facts(true, three(true, true));
    f.receiver = Some(Receiver {
        sender: Some(1),
        streaming: true,
        last_msg_age: 100,
    });
    let mut s = Script::new(settings(2, Failover::Automatic), Persisted::default(), f);
    s.run_to(2_000);
    let h = s.core.health(Time(s.now));
    assert_eq!((h.role, h.upstream), (HealthRole::Standby, Some(1)));
    assert!(h.streaming && !h.writable, "{h:?}");
    let mut f = facts(true, three(true, true));
    f.receiver = None;
    s.local = Some(f);
    s.run_to(4_000);
    assert!(!s.core.health(Time(s.now)).streaming);
}

#[test]
fn a_fence_that_failed_does_not_keep_a_primary_unwritable_once_its_majority_returns() {
    let mut s = Script::new(
        Settings {
            reconnect_attempts: 6,
            ..settings(1, Failover::Automatic)
        },
        Persisted::default(),
        facts(false, three(true, true)),
    );
    s.acks = vec![2, 3];
    s.run_to(3_000);
    s.acks.clear();
    // The voters go silent until the read-only fence is due, and the fence
    // job fails (as it does for a repmgr user that is not a superuser).
    let mut failed = false;
    // Answers not yet given (a fence retried after its failure).
    let mut queue = Vec::new();
    while !failed && s.now < 12_000 {
        s.now += 100;
        queue = vec![Input::Tick];
        // Each failure is retried at once: a few per step are enough.
        let mut steps = 0;
        while steps < 20 {
            let Some(i) = queue.pop() else { break };
            steps += 1;
            for a in s.core.step(Time(s.now), i) {
                match a {
                    Action::ReadLocal => queue.push(Input::Local(s.local.clone())),
                    Action::Fence { how } => {
                        queue.push(Input::Done(Done::Fenced {
                            how,
                            ok: Err("permission denied".into()),
                        }));
                        failed = true;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(failed, "no fence was attempted");
    assert!(!s.core.health(Time(s.now)).writable);
    // The majority answers again (the fence, retried meanwhile, still
    // fails): writable, though the durable record of the isolation
    // remains.
    s.acks = vec![2, 3];
    let until = s.now + 4_000;
    while s.now < until {
        s.now += 100;
        queue.push(Input::Tick);
        let mut steps = 0;
        while steps < 20 {
            let Some(i) = queue.pop() else { break };
            steps += 1;
            for a in s.core.step(Time(s.now), i) {
                match a {
                    Action::ReadLocal => queue.push(Input::Local(s.local.clone())),
                    Action::Fence { how } => queue.push(Input::Done(Done::Fenced {
                        how,
                        ok: Err("permission denied".into()),
                    })),
                    Action::Unfence { .. } => {
                        queue.push(Input::Done(Done::Unfenced { ok: Ok(()) }))
                    }
                    Action::SendHeartbeats { to, .. } => {
                        for from in to {
                            queue.push(Input::Heartbeat {
                                from,
                                sent: Time(s.now),
                                reply: HeartbeatReply::Ack {
                                    promise_ms: s.promise_ms,
                                    known_term: 1,
                                },
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let h = s.core.health(Time(s.now));
    assert!(h.writable && !h.fenced && !h.isolated, "{h:?}");
}
