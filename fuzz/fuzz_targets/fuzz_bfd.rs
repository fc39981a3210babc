//! BFD Control packets (RFC 5880 §4.1): decode never panics, and what decodes
//! encodes back to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = bfd::decode(data) {
        assert_eq!(bfd::decode(&bfd::encode(&p)), Ok(p));
    }
});
