//! One BFD session in asynchronous mode (RFC 5880 §6.8), sans-IO: it takes an
//! [`Input`] and returns [`Output`]s; the driver owns the socket and the clock.
//!
//! Demand mode and the Echo function are not implemented: packets always carry
//! D = 0 and Required Min Echo RX = 0, which RFC 5880 allows.
#![forbid(unsafe_code)]

use std::time::Duration;

pub use crate::packet::{Diag, Packet, State};

/// RFC 5880 §6.8.3: outside Up, Desired Min TX is at least one second.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The local parameters of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// bfd.DesiredMinTxInterval once Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult; never 0.
    pub detect_mult: u8,
    /// The C bit: this BFD does not share fate with the routing control plane.
    pub control_plane_independent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Next periodic transmission (§6.8.7).
    Tx,
    /// Detection time (§6.8.4); in AdminDown, the end of sending it (§6.8.16).
    Detect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A packet that decoded and belongs to this session: its Your
    /// Discriminator is ours, or 0 with state Down or AdminDown (§6.8.6).
    Received(Packet),
    TimerExpired(Timer),
    /// Local administrative down (§6.8.16): the session signals AdminDown.
    AdminDown,
    /// Leave AdminDown.
    Enable,
    /// New intervals or multiplier: a Poll Sequence carries them (§6.8.3).
    Reconfigure(Config),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Packet),
    Arm(Timer, Duration),
    Cancel(Timer),
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
        /// The peer's state as last heard: AdminDown says it stopped on purpose.
        remote_state: State,
    },
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A session's variables (RFC 5880 §6.8.1 names in the comments).
#[derive(Debug, Clone)]
pub struct Session {
    cfg: Config,
    /// bfd.SessionState
    state: State,
    /// bfd.RemoteSessionState
    remote_state: State,
    /// bfd.LocalDiscr
    local_disc: u32,
    /// bfd.RemoteDiscr
    remote_disc: u32,
    /// bfd.LocalDiag
    diag: Diag,
    /// bfd.DesiredMinTxInterval as advertised (µs).
    desired_tx: u32,
    /// bfd.RequiredMinRxInterval as advertised (µs).
    required_rx: u32,
    /// The TX basis in force: an increase waits for the Final (§6.8.3).
    tx_in_force: u32,
    /// The RX basis for our detection time: a decrease waits for the Final.
    rx_in_force: u32,
    /// bfd.RemoteMinRxInterval (µs); 1 until heard, 0 means "send nothing".
    remote_min_rx: u32,
    remote_desired_tx: u32,
    remote_detect_mult: u8,
    poll_active: bool,
    tx_armed: bool,
    /// AdminDown was sent for a Detection Time: nothing goes out until Enable.
    quiet: bool,
    rng: u64,
}

impl Session {
    /// `local_disc` must be non-zero and unique on the system; `seed` drives
    /// the transmit jitter.
    pub fn new(cfg: Config, local_disc: u32, seed: u64) -> Session {
        let slow = micros(cfg.desired_min_tx.max(SLOW_TX));
        let rx = micros(cfg.required_min_rx);
        Session {
            cfg,
            state: State::Down,
            remote_state: State::Down,
            local_disc,
            remote_disc: 0,
            diag: Diag::None,
            desired_tx: slow,
            required_rx: rx,
            tx_in_force: slow,
            rx_in_force: rx,
            remote_min_rx: 1,
            remote_desired_tx: 0,
            remote_detect_mult: 0,
            poll_active: false,
            tx_armed: false,
            quiet: false,
            rng: seed | 1,
        }
    }

    /// The first packet and the transmit timer.
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.send_now(&mut out, false);
        out
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn diag(&self) -> Diag {
        self.diag
    }

    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    pub fn remote_disc(&self) -> u32 {
        self.remote_disc
    }

    pub fn config(&self) -> Config {
        self.cfg
    }

    /// In AdminDown and still sending it: for a Detection Time after going there
    /// (§6.8.16), after which the session is quiet until [`Input::Enable`].
    pub fn signalling_admin_down(&self) -> bool {
        self.state == State::AdminDown && !self.quiet
    }

    pub fn poll_active(&self) -> bool {
        self.poll_active
    }

    /// The negotiated transmit interval: max(our Desired Min TX in force, the
    /// peer's Required Min RX).
    pub fn tx_interval(&self) -> Duration {
        Duration::from_micros(u64::from(self.tx_in_force.max(self.remote_min_rx)))
    }

    /// The latest a packet may follow the previous one (§6.8.7): the transmit interval,
    /// or 90 % of it with a detect multiplier of 1. A driver may send later than the
    /// jittered time it was given ([`Output::Arm`]) but not later than this, which
    /// lets it send the packets of many sessions in one wakeup.
    pub fn tx_latest(&self) -> Duration {
        let interval = self.tx_interval();
        if self.cfg.detect_mult == 1 {
            interval * 9 / 10
        } else {
            interval
        }
    }

    /// Detection time: the peer's multiplier × max(our Required Min RX in
    /// force, its Desired Min TX) (§6.8.4); None until the peer was heard.
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let basis = u64::from(self.rx_in_force.max(self.remote_desired_tx));
        Some(Duration::from_micros(
            basis * u64::from(self.remote_detect_mult),
        ))
    }

    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Received(p) => self.receive(p, &mut out),
            Input::TimerExpired(Timer::Tx) => {
                self.tx_armed = false;
                self.send_now(&mut out, false);
            }
            Input::TimerExpired(Timer::Detect) => self.detection_expired(&mut out),
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    let signal_for = self.admin_down_time();
                    // No parameter change is negotiated any more.
                    self.poll_active = false;
                    self.transition(State::AdminDown, Diag::AdminDown, &mut out);
                    // Idle in AdminDown, the detection timer ends the signalling.
                    out.push(Output::Arm(Timer::Detect, signal_for));
                }
            }
            Input::Enable => {
                if self.state == State::AdminDown {
                    self.quiet = false;
                    out.push(Output::Cancel(Timer::Detect));
                    self.transition(State::Down, Diag::None, &mut out);
                }
            }
            Input::Reconfigure(cfg) => {
                self.cfg = cfg;
                self.set_timing();
            }
        }
        out
    }

    /// §6.8.6, from "set bfd.RemoteDiscr" on; the checks before it are the
    /// codec's and the demultiplexer's.
    fn receive(&mut self, p: Packet, out: &mut Vec<Output>) {
        let interval_before = self.tx_interval();
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        self.remote_desired_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        self.remote_min_rx = p.required_min_rx;
        if p.final_ && self.poll_active {
            self.poll_active = false;
            self.tx_in_force = self.desired_tx;
            self.rx_in_force = self.required_rx;
        }
        if let Some(d) = self.detection_time() {
            if self.state != State::AdminDown {
                out.push(Output::Arm(Timer::Detect, d));
            }
        }
        if self.state == State::AdminDown {
            return;
        }
        if p.state == State::AdminDown {
            if self.state != State::Down {
                self.transition(State::Down, Diag::NeighborDown, out);
            }
        } else {
            match (self.state, p.state) {
                (State::Down, State::Down) => self.transition(State::Init, Diag::None, out),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.transition(State::Up, Diag::None, out)
                }
                (State::Up, State::Down) => self.transition(State::Down, Diag::NeighborDown, out),
                _ => {}
            }
        }
        if p.poll {
            // The Final goes at once, outside the periodic schedule (§6.5).
            out.push(Output::Send(self.packet(true)));
        }
        // A peer that had asked for silence (Required Min RX 0) may ask again.
        if !self.tx_armed && self.remote_min_rx != 0 {
            self.arm_tx(out);
        } else if self.tx_armed && self.tx_interval() < interval_before {
            // The peer wants packets sooner (its Required Min RX fell as it came Up):
            // the next one must not wait out the slower schedule, or the peer, now
            // expecting one every interval, declares us down first (§6.8.7). FRR
            // lowers it after going Up, while its detection time is already short.
            self.arm_tx(out);
        }
    }

    /// How long AdminDown is sent (§6.8.16: at least a Detection Time): the peer's
    /// detection time of us (our multiplier × the interval it expects packets at),
    /// or ours of the peer when that is longer.
    fn admin_down_time(&self) -> Duration {
        let expected = self
            .tx_interval()
            .max(Duration::from_micros(u64::from(self.desired_tx)));
        let theirs = expected * u32::from(self.cfg.detect_mult);
        self.detection_time()
            .map_or(theirs, |ours| ours.max(theirs))
    }

    fn detection_expired(&mut self, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            self.quiet = true;
            if self.tx_armed {
                self.tx_armed = false;
                out.push(Output::Cancel(Timer::Tx));
            }
            return;
        }
        if matches!(self.state, State::Init | State::Up) {
            self.remote_state = State::Down;
            self.transition(State::Down, Diag::DetectionTimeExpired, out);
        }
        // §6.8.1: the remote discriminator is forgotten after a detection time of silence.
        self.remote_disc = 0;
        self.remote_detect_mult = 0;
        self.remote_desired_tx = 0;
        self.remote_min_rx = 1;
        self.poll_active = false;
        self.tx_in_force = self.desired_tx;
        self.rx_in_force = self.required_rx;
        if !self.tx_armed {
            self.arm_tx(out);
        }
    }

    fn transition(&mut self, to: State, diag: Diag, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        out.push(Output::StateChanged {
            from,
            to,
            diag,
            remote_state: self.remote_state,
        });
        // AdminDown keeps the rate in force (see set_timing).
        self.set_timing();
        // A state change goes out at once rather than at the next tick.
        self.send_now(out, false);
    }

    /// Applies the configured intervals and the slow rate outside Up (§6.8.3),
    /// starting a Poll Sequence when Up and something changed.
    fn set_timing(&mut self) {
        // While AdminDown is signalled, the rate stays what the peer's detection time
        // of us was computed from, although §6.8.3 wants one second outside Up: sent
        // once a second, AdminDown whose first packet is lost would reach the peer
        // after it timed us out, a path failure rather than a shutdown. The session
        // goes quiet after a Detection Time, so the fast rate does not last.
        if self.signalling_admin_down() {
            return;
        }
        let tx = if self.state == State::Up {
            micros(self.cfg.desired_min_tx)
        } else {
            micros(self.cfg.desired_min_tx.max(SLOW_TX))
        };
        let rx = micros(self.cfg.required_min_rx);
        if tx == self.desired_tx && rx == self.required_rx {
            return;
        }
        self.desired_tx = tx;
        self.required_rx = rx;
        if self.state == State::Up {
            self.poll_active = true;
            // A faster TX and a slower RX are safe at once; the reverse waits for the Final.
            if tx < self.tx_in_force {
                self.tx_in_force = tx;
            }
            if rx > self.rx_in_force {
                self.rx_in_force = rx;
            }
        } else {
            self.poll_active = false;
            self.tx_in_force = tx;
            self.rx_in_force = rx;
        }
    }

    fn packet(&self, final_: bool) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll: self.poll_active && !final_,
            final_,
            cpi: self.cfg.control_plane_independent,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx: self.desired_tx,
            required_min_rx: self.required_rx,
            required_min_echo_rx: 0,
        }
    }

    fn send_now(&mut self, out: &mut Vec<Output>, final_: bool) {
        if self.quiet || self.remote_min_rx == 0 {
            // §6.8.7: the peer asked for no packets (or AdminDown was signalled).
            if self.tx_armed {
                self.tx_armed = false;
                out.push(Output::Cancel(Timer::Tx));
            }
            return;
        }
        out.push(Output::Send(self.packet(final_)));
        self.arm_tx(out);
    }

    /// §6.8.7: the interval less 0–25 % jitter, or 10–25 % with a multiplier of 1.
    fn arm_tx(&mut self, out: &mut Vec<Output>) {
        let interval = self.tx_interval();
        let floor = if self.cfg.detect_mult == 1 { 10 } else { 0 };
        let cut = floor + self.next_random() % (26 - floor);
        let jittered = interval * (100 - cut as u32) / 100;
        self.tx_armed = true;
        out.push(Output::Arm(Timer::Tx, jittered));
    }

    /// xorshift64: jitter needs spread, not secrecy.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests;
