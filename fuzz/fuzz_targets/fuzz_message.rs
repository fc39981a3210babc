//! A byte stream off a socket: frame message after message, decode each, round-trip it.
#![no_main]

use bgp::wire::{frame, Context};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    for ctx in [
        Context::default(),
        Context {
            four_octet_as: true,
            extended_message: true,
            ..Context::default()
        },
    ] {
        let mut rest = data;
        while let Ok(Some(n)) = frame(rest, &ctx) {
            let (msg, tail) = rest.split_at(n);
            common::check(msg, &ctx);
            rest = tail;
        }
    }
});
