use super::*;
use crate::wire::AfiSafi;

fn config() -> SessionConfig {
    SessionConfig {
        local_as: 64512,
        local_id: Ipv4Addr::new(10, 0, 0, 1),
        peer_as: 64512,
        hold_time: 90,
        keepalive_time: None,
        connect_retry: Duration::from_secs(5),
        passive: false,
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(64512),
        ],
    }
}

fn peer_open(asn: u32, hold: u16, id: [u8; 4]) -> Open {
    Open::new(
        asn,
        hold,
        Ipv4Addr::from(id),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    )
}

fn established() -> Session {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    s.handle(Input::Message(Message::Open(peer_open(
        64512,
        30,
        [10, 0, 0, 2],
    ))));
    s.handle(Input::Message(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    s
}

fn sent_notification(out: &[Output]) -> Option<&Notification> {
    out.iter().find_map(|o| match o {
        Output::Send(Message::Notification(n)) => Some(n),
        _ => None,
    })
}

#[test]
fn start_connects() {
    let mut s = Session::new(config());
    let out = s.handle(Input::Start);
    assert_eq!(s.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert!(out.contains(&Output::Arm(Timer::ConnectRetry, Duration::from_secs(5))));
}

#[test]
fn passive_start_waits_in_active() {
    let mut s = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    let out = s.handle(Input::Start);
    assert_eq!(s.state(), State::Active);
    assert!(!out.contains(&Output::Connect));
}

#[test]
fn connect_failure_goes_active_then_retries() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpFailed);
    assert_eq!(s.state(), State::Active);
    let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(s.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
}

#[test]
fn tcp_up_sends_open_and_arms_large_hold() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    let out = s.handle(Input::TcpConnected);
    assert_eq!(s.state(), State::OpenSent);
    assert!(
        matches!(out.get(1), Some(Output::Send(Message::Open(o))) if o.hold_time == 90 && o.asn() == 64512)
    );
    assert!(out.contains(&Output::Arm(Timer::Hold, LARGE_HOLD_TIME)));
}

#[test]
fn open_negotiates_lower_hold_time() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    let out = s.handle(Input::Message(Message::Open(peer_open(
        64512,
        30,
        [10, 0, 0, 2],
    ))));
    assert_eq!(s.state(), State::OpenConfirm);
    assert!(out.contains(&Output::Send(Message::Keepalive)));
    assert!(out.contains(&Output::Arm(Timer::Hold, Duration::from_secs(30))));
    assert!(out.contains(&Output::Arm(Timer::Keepalive, Duration::from_secs(10))));
}

#[test]
fn keepalive_in_openconfirm_establishes() {
    let s = established();
    let n = s.negotiated().expect("negotiated");
    assert!(n.context.four_octet_as);
    assert_eq!(n.families, vec![AfiSafi::IPV4_UNICAST]);
}

#[test]
fn wrong_peer_as_is_refused_with_2_2() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    let out = s.handle(Input::Message(Message::Open(peer_open(
        65000,
        90,
        [10, 0, 0, 2],
    ))));
    let n = sent_notification(&out).expect("notification");
    assert_eq!((n.code, n.subcode), (2, 2));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn same_router_id_in_ibgp_is_refused_with_2_3() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    let out = s.handle(Input::Message(Message::Open(peer_open(
        64512,
        90,
        [10, 0, 0, 1],
    ))));
    assert_eq!(
        sent_notification(&out).map(|n| (n.code, n.subcode)),
        Some((2, 3))
    );
}

#[test]
fn hold_timer_expiry_sends_4_0() {
    let mut s = established();
    let out = s.handle(Input::TimerExpired(Timer::Hold));
    assert_eq!(
        sent_notification(&out).map(|n| (n.code, n.subcode)),
        Some((4, 0))
    );
    assert_eq!(s.state(), State::Idle);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Down(DownReason::NotificationSent(_)))));
}

#[test]
fn keepalive_timer_sends_keepalive_and_rearms() {
    let mut s = established();
    let out = s.handle(Input::TimerExpired(Timer::Keepalive));
    assert_eq!(
        out,
        vec![
            Output::Send(Message::Keepalive),
            Output::Arm(Timer::Keepalive, Duration::from_secs(10))
        ]
    );
}

#[test]
fn update_in_established_goes_to_rib_and_restarts_hold() {
    let mut s = established();
    let out = s.handle(Input::Message(Message::Update(Update::default())));
    assert!(out.contains(&Output::Arm(Timer::Hold, Duration::from_secs(30))));
    assert!(out.iter().any(|o| matches!(o, Output::Update(_))));
}

#[test]
fn update_in_openconfirm_is_an_fsm_error() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    s.handle(Input::Message(Message::Open(peer_open(
        64512,
        90,
        [10, 0, 0, 2],
    ))));
    let out = s.handle(Input::Message(Message::Update(Update::default())));
    assert_eq!(
        sent_notification(&out).map(|n| (n.code, n.subcode)),
        Some((5, 2))
    );
}

#[test]
fn notification_received_goes_idle() {
    let mut s = established();
    let n = Notification::new(6, 2, Vec::new());
    let out = s.handle(Input::Message(Message::Notification(n.clone())));
    assert_eq!(s.state(), State::Idle);
    assert!(out.contains(&Output::Down(DownReason::NotificationReceived(n))));
    assert!(sent_notification(&out).is_none());
}

#[test]
fn silent_stop_sends_no_notification() {
    let mut s = established();
    let out = s.handle(Input::Stop(None));
    assert!(sent_notification(&out).is_none());
    assert!(out.contains(&Output::Close));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn stop_with_notification_sends_it() {
    let mut s = established();
    let out = s.handle(Input::Stop(Some(Notification::new(6, 2, Vec::new()))));
    assert_eq!(
        sent_notification(&out).map(|n| (n.code, n.subcode)),
        Some((6, 2))
    );
}

#[test]
fn decode_error_resets_with_that_notification() {
    let mut s = established();
    let out = s.handle(Input::DecodeError(Notification::new(3, 1, Vec::new())));
    assert_eq!(
        sent_notification(&out).map(|n| (n.code, n.subcode)),
        Some((3, 1))
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn hold_time_zero_disables_timers() {
    let mut s = Session::new(SessionConfig {
        hold_time: 0,
        ..config()
    });
    s.handle(Input::Start);
    s.handle(Input::TcpConnected);
    let out = s.handle(Input::Message(Message::Open(peer_open(
        64512,
        90,
        [10, 0, 0, 2],
    ))));
    assert!(out.contains(&Output::Cancel(Timer::Hold)));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Arm(Timer::Keepalive, _))));
}

#[test]
fn hard_reset_wraps_and_unwraps_the_cease() {
    let inner = Notification::shutdown(2, "maintenance");
    let hr = hard_reset(&inner);
    assert_eq!((hr.code, hr.subcode), (6, 9));
    assert_eq!(&hr.data[..2], &[6, 2]);
    assert_eq!(unwrap_hard_reset(&hr), Some(inner.clone()));
    assert_eq!(unwrap_hard_reset(&inner), None);
    let text = DownReason::NotificationReceived(hr).to_string();
    assert!(
        text.contains("Hard Reset (6/9)") && text.contains("(6/2)") && text.contains("maintenance"),
        "{text}"
    );
}
