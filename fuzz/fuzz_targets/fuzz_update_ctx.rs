//! UPDATE bodies under every negotiated context: the first byte picks 4-octet AS,
//! extended message, ADD-PATH per family and eBGP.
#![no_main]

use bgp::wire::{Context, Families};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&bits, body)) = data.split_first() else {
        return;
    };
    let add_path = Families {
        ipv4: bits & 4 != 0,
        ipv6: bits & 8 != 0,
    };
    let ctx = Context {
        four_octet_as: bits & 1 != 0,
        extended_message: bits & 2 != 0,
        add_path_rx: add_path,
        add_path_tx: add_path,
        ebgp: bits & 16 != 0,
    };
    if let Some(m) = common::with_header(2, body) {
        common::check(&m, &ctx);
    }
});
