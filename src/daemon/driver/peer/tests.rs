use super::*;

fn key() -> Key {
    Key {
        secret: b"secret".to_vec(),
        cluster: 42,
    }
}

#[test]
fn every_message_round_trips() {
    let reqs = [
        PeerRequest::Heartbeat {
            from: 1,
            term: 3,
            timeline: 2,
            promoted: true,
            fences: true,
        },
        PeerRequest::Vote(VoteRequest {
            term: 4,
            candidate: 2,
            failed: 1,
            timeline: 2,
            lsn: 123_456,
            pre: true,
        }),
        PeerRequest::Status,
    ];
    for r in reqs {
        let f: Vec<String> = encode_request(&r).split(' ').map(str::to_string).collect();
        assert_eq!(decode_request(&f), Some(r));
    }
    let replies = [
        PeerReply::Heartbeat(HeartbeatReply::Ack {
            promise_ms: 2000,
            known_term: 3,
        }),
        PeerReply::Heartbeat(HeartbeatReply::Superseded { term: 5, by: None }),
        PeerReply::Vote(VoteReply::Granted { promise_ms: 7 }),
        PeerReply::Vote(VoteReply::Refused(Refusal::TermTaken {
            granted: 4,
            to: Some(3),
        })),
        PeerReply::Vote(VoteReply::Refused(Refusal::MoreWal { lsn: 99 })),
        PeerReply::Status(DaemonStatus {
            granted_term: 4,
            granted_to: Some(2),
            known_term: 3,
            holds_lease: true,
            automatic: true,
        }),
    ];
    for r in replies {
        let f: Vec<String> = encode_reply(&r).split(' ').map(str::to_string).collect();
        assert_eq!(decode_reply(&f), Some(r));
    }
}

#[test]
fn hex_is_two_lowercase_digits_a_byte() {
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
}

#[test]
fn a_forged_or_foreign_line_does_not_open() {
    let k = key();
    let sealed = k.seal("RPMGR/1 STATUS abc");
    assert!(k.open(&sealed).is_some());
    let other = Key {
        cluster: 43,
        ..key()
    };
    assert!(other.open(&sealed).is_none());
    let tampered = sealed.replace("STATUS", "STATUX");
    assert!(k.open(&tampered).is_none());
}

#[test]
fn a_status_request_leaves_its_connection_for_the_next_one() {
    let key = Arc::new(RwLock::new(Some(self::key())));
    let handler: Handler = Arc::new(|r| match r {
        PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
        _ => None,
    });
    let port = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
    let to = Address {
        host: "127.0.0.1".into(),
        port,
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let status = || {
        ask(
            &to,
            &self::key(),
            &PeerRequest::Status,
            Duration::from_secs(2),
        )
    };
    assert!(status().is_ok());
    let kept = idle_conns::take(addr).expect("the connection is kept");
    let local = kept.local_addr().unwrap();
    idle_conns::put(addr, kept);
    assert!(status().is_ok());
    let again = idle_conns::take(addr).expect("kept again");
    assert_eq!(again.local_addr().unwrap(), local, "the same connection");
    // A connection the server closed is replaced, not an error.
    again.shutdown(std::net::Shutdown::Both).unwrap();
    idle_conns::put(addr, again);
    assert!(status().is_ok());
}

#[test]
fn a_round_asks_on_open_connections_and_hands_the_others_on() {
    let key = Arc::new(RwLock::new(Some(self::key())));
    let handler: Handler = Arc::new(|r| match r {
        PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
        _ => None,
    });
    let open = serve("127.0.0.1:0".parse().unwrap(), key.clone(), handler.clone()).unwrap();
    let other = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
    let at = |port| Address {
        host: "127.0.0.1".into(),
        port,
    };
    // A connection kept to the first only.
    let status = PeerRequest::Status;
    assert!(ask(&at(open), &self::key(), &status, Duration::from_secs(2)).is_ok());
    let targets = [(1, at(open)), (2, at(other))];
    let (mut answers, mut handed) = (Vec::new(), Vec::new());
    ask_many(
        &targets,
        &self::key(),
        &status,
        Duration::from_secs(2),
        |batch| answers.extend(batch),
        |t| handed.push(t),
    );
    assert_eq!(
        answers,
        vec![(1, Ok(PeerReply::Status(DaemonStatus::default())))]
    );
    assert_eq!(handed, vec![2]);
    // The connection is kept for the next round; a silent answer costs
    // the deadline and no more.
    let hb = PeerRequest::Heartbeat {
        from: 1,
        term: 1,
        timeline: 1,
        promoted: true,
        fences: false,
    };
    let (mut answers, mut handed) = (Vec::new(), Vec::new());
    let began = std::time::Instant::now();
    ask_many(
        &targets[..1],
        &self::key(),
        &hb,
        Duration::from_millis(300),
        |batch| answers.extend(batch),
        |t| handed.push(t),
    );
    assert!(began.elapsed() < Duration::from_secs(1));
    // The server closes a connection whose request it does not answer:
    // closed, so handed on (as ask would retry on a new one).
    assert!(
        answers == vec![(1, Err(NoAnswer::Silent))] || handed == vec![1],
        "{answers:?} {handed:?}"
    );
}

#[test]
fn a_request_is_answered_and_a_silent_server_costs_the_deadline() {
    let key = Arc::new(RwLock::new(Some(self::key())));
    let handler: Handler = Arc::new(|r| match r {
        PeerRequest::Status => Some(PeerReply::Status(DaemonStatus::default())),
        _ => None,
    });
    let port = serve("127.0.0.1:0".parse().unwrap(), key, handler).unwrap();
    let to = Address {
        host: "127.0.0.1".into(),
        port,
    };
    assert_eq!(
        ask(
            &to,
            &self::key(),
            &PeerRequest::Status,
            Duration::from_secs(2)
        ),
        Ok(PeerReply::Status(DaemonStatus::default()))
    );
    // No answer for a heartbeat from this handler: silence.
    let hb = PeerRequest::Heartbeat {
        from: 1,
        term: 1,
        timeline: 1,
        promoted: true,
        fences: false,
    };
    assert_eq!(
        ask(&to, &self::key(), &hb, Duration::from_millis(300)),
        Err(NoAnswer::Silent)
    );
    // The wrong key: no answer either.
    let wrong = Key {
        secret: b"other".to_vec(),
        cluster: 42,
    };
    assert_eq!(
        ask(
            &to,
            &wrong,
            &PeerRequest::Status,
            Duration::from_millis(300)
        ),
        Err(NoAnswer::Silent)
    );
    // Nothing listening: refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let none = Address {
        host: "127.0.0.1".into(),
        port,
    };
    assert_eq!(
        ask(
            &none,
            &self::key(),
            &PeerRequest::Status,
            Duration::from_millis(300)
        ),
        Err(NoAnswer::Refused)
    );
}
