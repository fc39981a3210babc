//! The property every target checks: whatever decodes re-encodes to bytes that decode to
//! the same value.

use bgp::wire::{decode, encode_to_bytes, Context, Message, Outcome};

/// The RFC 7606 verdict is not part of the value: what was discarded or found malformed
/// is not re-encoded, so the second decode can be more favourable.
fn value(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.outcome = Outcome::Accepted;
            Message::Update(u)
        }
        other => other,
    }
}

/// Decodes one framed message and checks the round trip.
pub fn check(msg: &[u8], ctx: &Context) {
    let Ok(first) = decode(msg, ctx) else {
        return;
    };
    // The session's send side mirrors what this side receives.
    let tx = Context {
        add_path_tx: ctx.add_path_rx,
        ..*ctx
    };
    let wire = encode_to_bytes(&first, &tx);
    // Re-encoding an UPDATE for a 2-octet peer may add octets (a longer AS4_PATH), so the
    // second decode allows extended messages; OPEN never grows.
    let rx = Context {
        extended_message: true,
        ..*ctx
    };
    let second = match decode(&wire, &rx) {
        Ok(m) => m,
        Err(e) => panic!("re-encoding of {first:?} does not decode: {e}"),
    };
    assert_eq!(value(first), value(second));
}

/// Wraps `body` in a header of message type `kind`, if it fits.
#[allow(dead_code)] // not every target needs it
pub fn with_header(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(body.len() + 19).ok()?;
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    Some(m)
}
