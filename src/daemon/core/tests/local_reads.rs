//! When the local server is read: every monitoring interval, and never
//! straight from a read's own answer (the driver reads synchronously).

use super::*;

fn reads(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::ReadLocal))
        .count()
}

#[test]
fn a_read_that_outlasts_the_interval_does_not_ask_for_the_next_one_itself() {
    let mut core = Core::new(
        settings(1, Failover::Automatic),
        Persisted::default(),
        Time(0),
    );
    assert_eq!(reads(&core.step(Time(0), Input::Tick)), 1);
    // The read takes 2 s (a hung server's deadline), the interval is 1 s:
    // its answer asks for no read, so the driver steps what it received
    // meanwhile (before, reads followed reads while the server hung, and
    // a fence job's end was never stepped)...
    let answer = core.step(Time(2_000), Input::Local(None));
    assert_eq!(reads(&answer), 0, "{answer:?}");
    // ...and is woken at once for the next read.
    assert!(core.next_wakeup() <= Time(2_000));
    let job = core.step(
        Time(2_000),
        Input::Done(Done::Fenced {
            how: FenceHow::ReadOnly,
            ok: Err("no answer from the server within 2 s".into()),
        }),
    );
    assert_eq!(reads(&job), 1, "{job:?}");
    // A read answered within the interval: the next waits for its tick.
    assert_eq!(reads(&core.step(Time(2_050), Input::Local(None))), 0);
    assert_eq!(reads(&core.step(Time(2_500), Input::Tick)), 0);
    assert_eq!(reads(&core.step(Time(3_000), Input::Tick)), 1);
}
