//! OPEN bodies: version, AS, hold time, identifier, optional parameters, capabilities.
#![no_main]

use bgp::wire::{Context, MAX_MESSAGE_LEN};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // Start from a valid fixed part so that most inputs reach the parameters.
    let mut body = vec![4, 0xfd, 0xe8, 0, 90, 10, 0, 0, 1];
    body.extend_from_slice(data);
    for b in [data, &body[..]] {
        if b.len() + 19 > MAX_MESSAGE_LEN {
            continue;
        }
        if let Some(m) = common::with_header(1, b) {
            common::check(&m, &Context::default());
        }
    }
});
