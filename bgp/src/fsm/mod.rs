//! The BGP session finite state machine (RFC 4271 §8), sans-IO.
//!
//! A [`Session`] owns no socket, task or clock. The driver feeds it [`Input`]s
//! (a TCP connection came up, a message arrived, a timer fired) and carries out
//! the [`Output`]s it returns (send this, arm that timer, close the connection).
//! One `Session` runs per TCP connection; during a connection collision
//! (RFC 4271 §6.8) the driver runs two and keeps the winner.

mod negotiate;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{codes, Capability, Message, Notification, Open, RouteRefresh, Update};

pub use negotiate::{negotiate, Negotiated};

/// RFC 4271 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    /// The RFC 4271 name, as `show peers` prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Timers the FSM asks the driver to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
}

/// What happens to a session.
// Inputs are built, handled and dropped one at a time; boxing the large
// message variant would cost an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Events 1/3 (ManualStart, AutomaticStart), and 4/5 when passive.
    Start,
    /// Event 2 (ManualStop) and 8 (AutomaticStop): send the NOTIFICATION if one
    /// is given, then close. `None` closes the TCP connection silently, which is
    /// how a graceful restart begins (RFC 4724 §4: no Cease, peers keep routes).
    Stop(Option<Notification>),
    /// Events 16/17 (Tcp_CR_Acked, TcpConnectionConfirmed).
    TcpConnected,
    /// Event 18 (TcpConnectionFails).
    TcpFailed,
    /// Events 9 (ConnectRetryTimer_Expires), 10 (HoldTimer_Expires),
    /// 11 (KeepaliveTimer_Expires).
    TimerExpired(Timer),
    /// Events 19–28: a well-formed message arrived.
    Message(Message),
    /// Events 21/22/28 (BGPHeaderErr, BGPOpenMsgErr, UpdateMsgErr): the decoder
    /// refused a message; the notification says why.
    DecodeError(Notification),
}

/// Why a session left Established or never got there.
#[derive(Debug, Clone, PartialEq)]
pub enum DownReason {
    /// We stopped it (with or without a NOTIFICATION).
    Stopped,
    /// The peer sent a NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent a NOTIFICATION because of an error.
    NotificationSent(Notification),
    /// The TCP connection failed or closed.
    ConnectionLost,
}

/// RFC 8538 §3: a Hard Reset (Cease 6/9) carries the NOTIFICATION it stands
/// for as ErrCode, Subcode, Data.
pub fn hard_reset(n: &Notification) -> Notification {
    let mut data = Vec::with_capacity(n.data.len() + 2);
    data.push(n.code);
    data.push(n.subcode);
    data.extend_from_slice(&n.data);
    Notification::new(codes::CEASE, HARD_RESET, data)
}

/// Cease subcode of the RFC 8538 Hard Reset.
pub const HARD_RESET: u8 = 9;

/// The NOTIFICATION a Hard Reset wraps, if `n` is one.
pub fn unwrap_hard_reset(n: &Notification) -> Option<Notification> {
    if n.code != codes::CEASE || n.subcode != HARD_RESET {
        return None;
    }
    match &n.data[..] {
        [code, subcode, rest @ ..] => Some(Notification::new(*code, *subcode, rest.to_vec())),
        _ => None,
    }
}

fn describe(n: &Notification) -> String {
    match unwrap_hard_reset(n) {
        Some(inner) => format!("Hard Reset (6/9) of {inner}"),
        None => n.to_string(),
    }
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Stopped => f.write_str("stopped"),
            DownReason::NotificationReceived(n) => write!(f, "received {}", describe(n)),
            DownReason::NotificationSent(n) => write!(f, "sent {}", describe(n)),
            DownReason::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// What the driver must do.
// Like [`Input`], outputs are consumed as soon as they are produced.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Close the TCP connection (after sending what was queued).
    Close,
    Send(Message),
    Arm(Timer, Duration),
    Cancel(Timer),
    StateChanged {
        from: State,
        to: State,
    },
    /// The session reached Established with these parameters.
    Established(Box<Negotiated>),
    /// A route update to hand to the RIB.
    Update(Box<Update>),
    RouteRefresh(RouteRefresh),
    /// The session went back to Idle.
    Down(DownReason),
}

/// Static parameters of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce in its OPEN.
    pub peer_as: u32,
    /// Proposed hold time in seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// Keepalive interval; default a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    /// Wait for the peer to connect instead of connecting (RFC 4271 PassiveTcpEstablishment).
    pub passive: bool,
    /// Capabilities of our OPEN.
    pub capabilities: Vec<Capability>,
}

/// The hold time used before OPEN arrives (RFC 4271 §8.2.2 suggests 4 minutes).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// One session's FSM.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    negotiated: Option<Negotiated>,
    peer_open: Option<Open>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            state: State::Idle,
            negotiated: None,
            peer_open: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The peer's OPEN, once received (used for collision resolution).
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::Stop(notification) => {
                if let Some(n) = notification.clone() {
                    if matches!(
                        self.state,
                        State::OpenSent | State::OpenConfirm | State::Established
                    ) {
                        out.push(Output::Send(Message::Notification(n)));
                    }
                }
                self.go_idle(&mut out, DownReason::Stopped);
            }
            Input::TcpConnected => self.tcp_connected(&mut out),
            Input::TcpFailed => self.tcp_failed(&mut out),
            Input::TimerExpired(t) => self.timer(t, &mut out),
            Input::Message(m) => self.message(m, &mut out),
            Input::DecodeError(n) => self.error(n, &mut out),
        }
        out
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            return;
        }
        out.push(Output::Arm(Timer::ConnectRetry, self.config.connect_retry));
        if self.config.passive {
            self.transition(State::Active, out);
        } else {
            out.push(Output::Connect);
            self.transition(State::Connect, out);
        }
    }

    fn tcp_connected(&mut self, out: &mut Vec<Output>) {
        match self.state {
            State::Idle | State::Connect | State::Active => {
                out.push(Output::Cancel(Timer::ConnectRetry));
                out.push(Output::Send(Message::Open(self.our_open())));
                out.push(Output::Arm(Timer::Hold, LARGE_HOLD_TIME));
                self.transition(State::OpenSent, out);
            }
            // A second connection is the driver's business (collision): one FSM per connection.
            _ => {}
        }
    }

    fn tcp_failed(&mut self, out: &mut Vec<Output>) {
        match self.state {
            State::Connect => {
                // RFC 4271 §8.2.2: stay in Active, retry when ConnectRetryTimer fires.
                out.push(Output::Arm(Timer::ConnectRetry, self.config.connect_retry));
                self.transition(State::Active, out);
            }
            State::Active | State::Idle => {}
            _ => self.go_idle(out, DownReason::ConnectionLost),
        }
    }

    fn timer(&mut self, timer: Timer, out: &mut Vec<Output>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Connect | State::Active) if !self.config.passive => {
                out.push(Output::Close);
                out.push(Output::Connect);
                out.push(Output::Arm(Timer::ConnectRetry, self.config.connect_retry));
                self.transition(State::Connect, out);
            }
            (Timer::ConnectRetry, State::Active) => {
                out.push(Output::Arm(Timer::ConnectRetry, self.config.connect_retry));
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                let n = Notification::new(codes::HOLD_TIMER_EXPIRED, 0, Vec::new());
                out.push(Output::Send(Message::Notification(n.clone())));
                self.go_idle(out, DownReason::NotificationSent(n));
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Output::Send(Message::Keepalive));
                if let Some(k) = self.negotiated.as_ref().map(|n| n.keepalive) {
                    if !k.is_zero() {
                        out.push(Output::Arm(Timer::Keepalive, k));
                    }
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, message: Message, out: &mut Vec<Output>) {
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.go_idle(out, DownReason::NotificationReceived(n));
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(open, out),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(out);
                if let Some(n) = self.negotiated.clone() {
                    self.transition(State::Established, out);
                    out.push(Output::Established(Box::new(n)));
                }
            }
            (State::Established, Message::Keepalive) => self.restart_hold(out),
            (State::Established, Message::Update(u)) => {
                self.restart_hold(out);
                out.push(Output::Update(Box::new(u)));
            }
            (State::Established, Message::RouteRefresh(r)) => {
                if self.negotiated.as_ref().is_some_and(|n| n.route_refresh) {
                    out.push(Output::RouteRefresh(r));
                } else {
                    // RFC 2918 §4: a ROUTE-REFRESH without the capability is ignored.
                    tracing::debug!(
                        "ROUTE-REFRESH from a peer that did not advertise the capability"
                    );
                }
            }
            (State::Idle | State::Connect | State::Active, _) => {}
            (_, _) => {
                // Event 24-28 in the wrong state: FSM error (RFC 6608 subcodes).
                let sub = match self.state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                self.error(Notification::new(codes::FSM, sub, Vec::new()), out);
            }
        }
    }

    fn open_received(&mut self, open: Open, out: &mut Vec<Output>) {
        match negotiate(&self.config, &open) {
            Ok(n) => {
                out.push(Output::Send(Message::Keepalive));
                if !n.keepalive.is_zero() {
                    out.push(Output::Arm(Timer::Keepalive, n.keepalive));
                }
                if n.hold_time.is_zero() {
                    out.push(Output::Cancel(Timer::Hold));
                } else {
                    out.push(Output::Arm(Timer::Hold, n.hold_time));
                }
                self.negotiated = Some(n);
                self.peer_open = Some(open);
                self.transition(State::OpenConfirm, out);
            }
            Err(notification) => self.error(notification, out),
        }
    }

    fn restart_hold(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated {
            if !n.hold_time.is_zero() {
                out.push(Output::Arm(Timer::Hold, n.hold_time));
            }
        }
    }

    /// Sends the NOTIFICATION (where a connection is open) and goes to Idle.
    fn error(&mut self, n: Notification, out: &mut Vec<Output>) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            out.push(Output::Send(Message::Notification(n.clone())));
        }
        self.go_idle(out, DownReason::NotificationSent(n));
    }

    fn go_idle(&mut self, out: &mut Vec<Output>, reason: DownReason) {
        if self.state == State::Idle {
            return;
        }
        out.push(Output::Cancel(Timer::ConnectRetry));
        out.push(Output::Cancel(Timer::Hold));
        out.push(Output::Cancel(Timer::Keepalive));
        out.push(Output::Close);
        self.negotiated = None;
        self.transition(State::Idle, out);
        out.push(Output::Down(reason));
    }

    fn transition(&mut self, to: State, out: &mut Vec<Output>) {
        let from = self.state;
        if from != to {
            self.state = to;
            out.push(Output::StateChanged { from, to });
        }
    }

    fn our_open(&self) -> Open {
        Open::new(
            self.config.local_as,
            self.config.hold_time,
            self.config.local_id,
            self.config.capabilities.clone(),
        )
    }
}
