//! The control socket: whatever line a client sends, the daemon's parser answers with a
//! request or an error message, never a panic; a request it accepts survives a round trip
//! through the CLI's encoder. The CLI's parser of responses is fuzzed the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;

use api::protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match protocol::parse_request(line) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("a request serializes");
            assert_eq!(protocol::parse_request(&again), Ok(req));
        }
        Err(message) => assert!(!message.is_empty()),
    }
    if let Ok(resp) = serde_json::from_str::<protocol::Response>(line) {
        let again = serde_json::to_string(&resp).expect("a response serializes");
        let back: protocol::Response =
            serde_json::from_str(&again).expect("a response parses back");
        assert_eq!(back, resp);
    }
});
