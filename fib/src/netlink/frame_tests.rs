//! The exchanges as both sockets run them, fed datagrams as the kernel writes them.

use netlink_packet_route::link::LinkMessage;

use super::*;

const RTM_NEWLINK: u16 = 16;
const NLM_F_MULTI: u16 = 2;

/// One message: the 16-byte header, then `payload`, padded to 4 bytes.
fn message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, payload: &[u8]) {
    let len = (NLMSG_HDRLEN + payload.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// An `NLMSG_ERROR` answer (errno 0: the ack), capped as `NETLINK_CAP_ACK` makes it: the
/// errno and the request's header.
fn error(out: &mut Vec<u8>, seq: u32, errno: i32) {
    let mut payload = (-errno).to_ne_bytes().to_vec();
    payload.extend_from_slice(&[0; 16]);
    message(out, NLMSG_ERROR, 0, seq, &payload);
}

fn done(out: &mut Vec<u8>, seq: u32, flags: u16) {
    message(
        out,
        NLMSG_DONE,
        NLM_F_MULTI | flags,
        seq,
        &0i32.to_ne_bytes(),
    );
}

fn get_link() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

#[test]
fn a_request_asks_for_its_ack_under_its_sequence_number() {
    let (_, buf) = Ack::new(get_link(), 0x400, 41);
    let sent: Vec<_> = frames(&buf).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].seq, 41);
    assert_eq!(sent[0].flags, 0x400 | NLM_F_REQUEST | NLM_F_ACK);
    assert_eq!(sent[0].whole.len(), buf.len());
}

#[test]
fn an_ack_answers_only_its_own_request() {
    let (ack, _) = Ack::new(get_link(), 0, 8);
    let mut other = Vec::new();
    error(&mut other, 7, libc::EEXIST);
    assert!(ack.read(&other).is_none(), "another request's answer");
    let mut both = other.clone();
    error(&mut both, 8, 0);
    assert!(matches!(ack.read(&both), Some(Ok(()))));
    let mut refused = Vec::new();
    error(&mut refused, 8, libc::EEXIST);
    let e = ack.read(&refused).and_then(Result::err).expect("an error");
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
}

#[test]
fn a_get_answers_with_the_message_before_its_ack() {
    let (mut get, _) = Get::new(get_link(), 3);
    let mut answer = Vec::new();
    message(&mut answer, RTM_NEWLINK, 0, 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(get.read(&answer).is_none(), "the ack is still to come");
    let mut ack = Vec::new();
    error(&mut ack, 3, 0);
    let payload = get.read(&ack).and_then(Result::ok).expect("an answer");
    assert_eq!(payload, Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));

    let (mut missing, _) = Get::new(get_link(), 4);
    let mut nodev = Vec::new();
    error(&mut nodev, 4, libc::ENODEV);
    let e = missing
        .read(&nodev)
        .and_then(Result::err)
        .expect("an error");
    assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
}

#[test]
fn a_dump_reads_every_datagram_until_its_done() {
    let mut buf = Vec::new();
    let mut dump = Dump::new(get_link(), 9, &mut buf);
    assert_eq!(
        frames(&buf).next().map(|f| f.flags),
        Some(NLM_F_REQUEST | NLM_F_DUMP)
    );
    let mut seen = Vec::new();
    let mut each = |f: Option<&Frame<'_>>| seen.push(f.map(|f| f.payload[0]));
    for part in [[1u8, 2], [3, 4]] {
        let mut datagram = Vec::new();
        for p in part {
            message(&mut datagram, RTM_NEWLINK, NLM_F_MULTI, 9, &[p, 0, 0, 0]);
        }
        // A notification or another request's answer on the same socket is not the dump's.
        message(&mut datagram, RTM_NEWLINK, 0, 0, &[99, 0, 0, 0]);
        assert!(dump.read(&datagram, &mut each).is_none());
    }
    let mut end = Vec::new();
    done(&mut end, 9, 0);
    assert!(matches!(
        dump.read(&end, &mut each),
        Some(DumpEnd::Done(Ok(())))
    ));
    assert_eq!(seen, [Some(1), Some(2), Some(3), Some(4)]);
}

#[test]
fn an_interrupted_dump_voids_what_it_gave_and_runs_again() {
    let mut buf = Vec::new();
    let mut dump = Dump::new(get_link(), 10, &mut buf);
    let mut seen = Vec::new();
    let mut each = |f: Option<&Frame<'_>>| seen.push(f.is_some());
    let mut datagram = Vec::new();
    message(&mut datagram, RTM_NEWLINK, NLM_F_MULTI, 10, &[1, 0, 0, 0]);
    done(&mut datagram, 10, NLM_F_DUMP_INTR);
    assert!(matches!(
        dump.read(&datagram, &mut each),
        Some(DumpEnd::Again)
    ));
    assert_eq!(seen, [true, false]);
}

#[test]
fn a_refused_dump_is_the_kernels_error() {
    let mut buf = Vec::new();
    let mut dump = Dump::new(get_link(), 11, &mut buf);
    let mut datagram = Vec::new();
    error(&mut datagram, 11, libc::EINVAL);
    match dump.read(&datagram, &mut |_| {}) {
        Some(DumpEnd::Done(Err(FibError::Kernel { what, source }))) => {
            assert_eq!(what, "dump");
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        _ => panic!("not the kernel's error"),
    }
}

#[test]
fn sequence_numbers_skip_zero() {
    let mut seq = Seq(u32::MAX - 1);
    assert_eq!(seq.take(1), u32::MAX - 1);
    assert_eq!(seq.take(1), u32::MAX);
    assert_eq!(seq.take(1), 1, "0 is what notifications carry");
    assert_eq!(seq.take(5), 2);
    assert_eq!(seq.take(0), 7, "at least one is taken");
    assert_eq!(seq.take(1), 8);
}

#[test]
fn a_truncated_datagram_is_an_error() {
    let mut whole = Vec::new();
    error(&mut whole, 1, 0);
    assert!(datagram(&whole, whole.len()).is_ok());
    let e = datagram(&whole, 70_000).expect_err("truncated");
    assert_eq!(
        e.to_string(),
        "undecodable netlink message: datagram of 70000 bytes truncated"
    );
}
