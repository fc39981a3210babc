//! Shared by the driver and keeper tests.

use bfd::{Packet, State};

/// A peer's Control packet: discriminator 0xabcd, 50 ms intervals, multiplier 3.
pub fn packet(state: State, your_disc: u32) -> Packet {
    Packet {
        diag: bfd::Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_disc: 0xabcd,
        your_disc,
        desired_min_tx: 50_000,
        required_min_rx: 50_000,
        required_min_echo_rx: 0,
    }
}

// Not every test binary uses every helper.
#[allow(dead_code)]
pub mod keeper;
