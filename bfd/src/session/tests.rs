//! RFC 5880 §6.8.6 transitions, timers and the Poll Sequence, one input at a time.

use super::*;

const CFG: Config = Config {
    desired_min_tx: Duration::from_millis(300),
    required_min_rx: Duration::from_millis(300),
    detect_mult: 3,
    control_plane_independent: true,
};

fn session() -> Session {
    let mut s = Session::new(CFG, 0x1111, 42);
    s.start();
    s
}

/// What the peer (discriminator 0x2222) sends.
fn peer(state: State) -> Packet {
    Packet {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_disc: 0x2222,
        your_disc: 0x1111,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

fn up() -> Session {
    let mut s = session();
    s.handle(Input::Received(peer(State::Init)));
    assert_eq!(s.state(), State::Up);
    s
}

fn sent(out: &[Output]) -> Vec<Packet> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn changed(out: &[Output]) -> Option<(State, State, Diag)> {
    out.iter().find_map(|o| match o {
        Output::StateChanged { from, to, diag, .. } => Some((*from, *to, *diag)),
        _ => None,
    })
}

#[test]
fn starts_down_sending_slowly_with_discriminators() {
    let mut s = Session::new(CFG, 0x1111, 42);
    let out = s.start();
    let p = sent(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].state, State::Down);
    assert_eq!((p[0].my_disc, p[0].your_disc), (0x1111, 0));
    assert_eq!(
        p[0].desired_min_tx, 1_000_000,
        "not Up: at least 1 s (§6.8.3)"
    );
    assert_eq!(p[0].required_min_rx, 300_000);
    assert!(p[0].cpi);
}

#[test]
fn down_hearing_down_goes_init() {
    let mut s = session();
    let out = s.handle(Input::Received(peer(State::Down)));
    assert_eq!(changed(&out), Some((State::Down, State::Init, Diag::None)));
    assert_eq!(sent(&out)[0].your_disc, 0x2222);
}

#[test]
fn down_hearing_init_goes_up() {
    let mut s = session();
    let out = s.handle(Input::Received(peer(State::Init)));
    assert_eq!(changed(&out), Some((State::Down, State::Up, Diag::None)));
}

#[test]
fn down_hearing_up_stays_down() {
    let mut s = session();
    let out = s.handle(Input::Received(peer(State::Up)));
    assert_eq!(changed(&out), None);
    assert_eq!(s.state(), State::Down);
}

#[test]
fn init_hearing_init_or_up_goes_up() {
    for remote in [State::Init, State::Up] {
        let mut s = session();
        s.handle(Input::Received(peer(State::Down)));
        let out = s.handle(Input::Received(peer(remote)));
        assert_eq!(changed(&out), Some((State::Init, State::Up, Diag::None)));
    }
}

#[test]
fn init_hearing_down_stays_init() {
    let mut s = session();
    s.handle(Input::Received(peer(State::Down)));
    assert_eq!(changed(&s.handle(Input::Received(peer(State::Down)))), None);
    assert_eq!(s.state(), State::Init);
}

#[test]
fn up_hearing_down_goes_down_with_neighbor_signaled() {
    let mut s = up();
    let out = s.handle(Input::Received(peer(State::Down)));
    assert_eq!(
        changed(&out),
        Some((State::Up, State::Down, Diag::NeighborDown))
    );
}

#[test]
fn admin_down_from_the_peer_takes_up_and_init_down_and_says_so() {
    let mut s = up();
    let out = s.handle(Input::Received(peer(State::AdminDown)));
    assert!(out.contains(&Output::StateChanged {
        from: State::Up,
        to: State::Down,
        diag: Diag::NeighborDown,
        remote_state: State::AdminDown,
    }));
    let mut s = session();
    s.handle(Input::Received(peer(State::Down)));
    let out = s.handle(Input::Received(peer(State::AdminDown)));
    assert_eq!(
        changed(&out),
        Some((State::Init, State::Down, Diag::NeighborDown))
    );
    // Down stays Down: AdminDown never makes it Init.
    let out = s.handle(Input::Received(peer(State::AdminDown)));
    assert_eq!(changed(&out), None);
}

#[test]
fn detection_time_expiry_takes_up_down_and_forgets_the_peer() {
    let mut s = up();
    let out = s.handle(Input::TimerExpired(Timer::Detect));
    assert!(out.contains(&Output::StateChanged {
        from: State::Up,
        to: State::Down,
        diag: Diag::DetectionTimeExpired,
        remote_state: State::Down,
    }));
    assert_eq!(s.remote_disc(), 0);
    let p = sent(&out);
    assert_eq!(p[0].state, State::Down);
    assert_eq!(p[0].desired_min_tx, 1_000_000, "back to the slow rate");
}

#[test]
fn detection_time_expiry_in_down_changes_nothing() {
    let mut s = session();
    let out = s.handle(Input::TimerExpired(Timer::Detect));
    assert_eq!(changed(&out), None);
}

#[test]
fn each_packet_rearms_detection_with_the_peers_multiplier() {
    let mut s = up();
    let mut p = peer(State::Up);
    p.detect_mult = 5;
    p.desired_min_tx = 400_000;
    let out = s.handle(Input::Received(p));
    assert!(out.contains(&Output::Arm(Timer::Detect, Duration::from_millis(2000))));
}

#[test]
fn local_admin_down_signals_it_and_ignores_the_peer() {
    let mut s = up();
    let out = s.handle(Input::AdminDown);
    assert_eq!(
        changed(&out),
        Some((State::Up, State::AdminDown, Diag::AdminDown))
    );
    assert!(out.contains(&Output::Arm(Timer::Detect, Duration::from_millis(900))));
    assert_eq!(sent(&out)[0].state, State::AdminDown);
    assert_eq!(sent(&out)[0].diag, Diag::AdminDown);
    let out = s.handle(Input::Received(peer(State::Down)));
    assert_eq!(changed(&out), None);
    assert_eq!(s.state(), State::AdminDown);
    let out = s.handle(Input::Enable);
    assert_eq!(
        changed(&out),
        Some((State::AdminDown, State::Down, Diag::None))
    );
}

#[test]
fn going_up_polls_for_the_fast_rate_and_the_final_ends_it() {
    let mut s = session();
    let out = s.handle(Input::Received(peer(State::Init)));
    let p = sent(&out);
    assert!(p[0].poll, "the rate change to 300 ms is polled");
    assert_eq!(p[0].desired_min_tx, 300_000);
    assert!(s.poll_active());
    // A decrease of TX applies at once.
    assert_eq!(s.tx_interval(), Duration::from_millis(300));
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin));
    assert!(!s.poll_active());
    let out = s.handle(Input::TimerExpired(Timer::Tx));
    assert!(!sent(&out)[0].poll);
}

#[test]
fn a_slower_tx_waits_for_the_final() {
    let mut s = up();
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin));
    let slower = Config {
        desired_min_tx: Duration::from_millis(900),
        ..CFG
    };
    s.handle(Input::Reconfigure(slower));
    assert!(s.poll_active());
    assert_eq!(s.tx_interval(), Duration::from_millis(300));
    s.handle(Input::Received(fin));
    assert_eq!(s.tx_interval(), Duration::from_millis(900));
}

#[test]
fn a_faster_rx_waits_for_the_final_before_shortening_detection() {
    let mut s = up();
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin));
    let faster = Config {
        required_min_rx: Duration::from_millis(100),
        ..CFG
    };
    s.handle(Input::Reconfigure(faster));
    let mut p = peer(State::Up);
    p.desired_min_tx = 100_000;
    s.handle(Input::Received(p));
    assert_eq!(s.detection_time(), Some(Duration::from_millis(900)));
    p.final_ = true;
    s.handle(Input::Received(p));
    assert_eq!(s.detection_time(), Some(Duration::from_millis(300)));
}

#[test]
fn a_poll_is_answered_at_once_with_a_final_without_poll() {
    let mut s = up();
    let mut p = peer(State::Up);
    p.poll = true;
    let out = s.handle(Input::Received(p));
    let f = sent(&out);
    assert_eq!(f.len(), 1);
    assert!(f[0].final_ && !f[0].poll);
}

#[test]
fn tx_interval_is_the_larger_of_ours_and_the_peers_rx() {
    let mut s = up();
    let mut p = peer(State::Up);
    p.required_min_rx = 500_000;
    s.handle(Input::Received(p));
    assert_eq!(s.tx_interval(), Duration::from_millis(500));
}

#[test]
fn jitter_stays_within_75_to_100_percent_and_varies() {
    let mut s = up();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        for o in s.handle(Input::TimerExpired(Timer::Tx)) {
            if let Output::Arm(Timer::Tx, d) = o {
                assert!(d >= Duration::from_millis(225) && d <= Duration::from_millis(300));
                assert!(d <= s.tx_latest());
                seen.insert(d);
            }
        }
    }
    assert!(seen.len() > 10, "jitter should vary: {seen:?}");
}

#[test]
fn jitter_with_multiplier_one_stays_within_75_to_90_percent() {
    let cfg = Config {
        detect_mult: 1,
        ..CFG
    };
    let mut s = Session::new(cfg, 7, 9);
    for _ in 0..500 {
        for o in s.handle(Input::TimerExpired(Timer::Tx)) {
            if let Output::Arm(Timer::Tx, d) = o {
                assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(900));
                assert_eq!(s.tx_latest(), Duration::from_millis(900));
            }
        }
    }
}

#[test]
fn a_peer_asking_for_no_packets_gets_none() {
    let mut s = up();
    let mut p = peer(State::Up);
    p.required_min_rx = 0;
    s.handle(Input::Received(p));
    let out = s.handle(Input::TimerExpired(Timer::Tx));
    assert!(sent(&out).is_empty());
    assert!(!out.iter().any(|o| matches!(o, Output::Arm(Timer::Tx, _))));
}

#[test]
fn a_peer_asking_for_packets_sooner_gets_the_next_one_sooner() {
    // Up while the peer still asks for 1 s (its slow rate before it came Up): our
    // transmit timer runs at 1 s.
    let mut s = session();
    let mut slow = peer(State::Init);
    slow.desired_min_tx = 1_000_000;
    slow.required_min_rx = 1_000_000;
    s.handle(Input::Received(slow));
    assert_eq!(s.state(), State::Up);
    assert_eq!(s.tx_interval(), Duration::from_secs(1));
    // Up now, it asks for 300 ms: the armed 1 s must not stand, or its 900 ms
    // detection time runs out before our next packet.
    let out = s.handle(Input::Received(peer(State::Up)));
    let armed: Vec<Duration> = out
        .iter()
        .filter_map(|o| match o {
            Output::Arm(Timer::Tx, d) => Some(*d),
            _ => None,
        })
        .collect();
    assert!(
        armed
            .last()
            .is_some_and(|d| *d <= Duration::from_millis(300)),
        "transmit timer re-armed within the new interval: {armed:?}"
    );
}

fn armed(out: &[Output], timer: Timer) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::Arm(t, d) if *t == timer => Some(*d),
        _ => None,
    })
}

/// §6.8.16: AdminDown goes out for at least a Detection Time, at the rate the peer's
/// detection time of us was computed from (one packet a second would leave a peer
/// that lost the first one to time out: a path failure, not a shutdown); then quiet.
#[test]
fn local_admin_down_is_sent_for_a_detection_time_at_the_transmit_interval() {
    let mut s = up();
    let interval = s.tx_interval();
    assert_eq!(interval, Duration::from_millis(300));
    let out = s.handle(Input::AdminDown);
    assert_eq!(sent(&out).len(), 1);
    assert_eq!(sent(&out)[0].desired_min_tx, 300_000, "{out:?}");
    // The peer's detection time of us: our multiplier × the interval.
    assert_eq!(armed(&out, Timer::Detect), Some(Duration::from_millis(900)));
    assert!(s.signalling_admin_down());
    let mut sent_for = Duration::ZERO;
    for _ in 0..3 {
        let next = armed(&out, Timer::Tx).unwrap_or(Duration::MAX);
        assert!(next <= interval, "next AdminDown in {next:?}");
        sent_for += next;
        let again = s.handle(Input::TimerExpired(Timer::Tx));
        assert_eq!(sent(&again).len(), 1);
        assert_eq!(sent(&again)[0].state, State::AdminDown);
        if sent_for >= Duration::from_millis(900) {
            break;
        }
    }
    // A Detection Time later: quiet, and nothing from the peer wakes it.
    let out = s.handle(Input::TimerExpired(Timer::Detect));
    assert!(out.contains(&Output::Cancel(Timer::Tx)), "{out:?}");
    assert!(sent(&out).is_empty());
    assert!(!s.signalling_admin_down());
    assert!(sent(&s.handle(Input::TimerExpired(Timer::Tx))).is_empty());
    assert!(sent(&s.handle(Input::Received(peer(State::Down)))).is_empty());
    // Enabled again: Down, at the slow rate.
    let out = s.handle(Input::Enable);
    assert_eq!(sent(&out)[0].state, State::Down);
    assert_eq!(sent(&out)[0].desired_min_tx, 1_000_000);
}
