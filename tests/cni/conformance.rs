//! The CNI spec's rules where a node is under strain: DEL and GC that touch only what is
//! theirs, GC kept to its network, DEL that is not lost while the daemon is away, an ADD
//! that fails after the daemon answered, results in the shape of their version, ADD chained
//! after another plugin, CHECK against the kernel, STATUS that follows what ADD could do.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};

use api::protocol::{IpamErrorKind, Request, Response};
use interop::harness::TempDir;

use super::*;

fn message(out: &interop::cni::Outcome) -> String {
    out.json()["msg"].as_str().unwrap_or_default().to_string()
}

/// A stand-in daemon for one connection: `answer` says what it replies.
fn stand_in(socket: &std::path::Path, answer: fn(Request) -> Response) {
    let listener = UnixListener::bind(socket).expect("bind");
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let reply = match api::protocol::parse_request(line.trim_end()) {
            Ok(r) => answer(r),
            Err(message) => Response::Error { message },
        };
        let text = serde_json::to_string(&reply).unwrap_or_default() + "\n";
        let _ = (&stream).write_all(text.as_bytes());
    });
}

/// A daemon that answers, but whose blocks are full and that can get no other, cannot
/// serve ADD: STATUS says so (code 50).
#[test]
fn status_fails_when_the_daemon_cannot_give_an_address() {
    require_root();
    let dir = TempDir::new("stand-in").expect("tmp");
    let socket = dir.join("ipipd.sock");
    stand_in(&socket, |r| match r {
        Request::IpamStatus => Response::IpamError {
            kind: IpamErrorKind::Exhausted,
            message: "node node-a (blocks: 101.76.9.128/30): no free IPv4 address".into(),
        },
        Request::ShowBlocks => Response::Blocks { blocks: Vec::new() },
        other => Response::Error {
            message: format!("not in this test: {other:?}"),
        },
    });
    let runner = pod();
    let out = Call::new("STATUS", "", None, cni::conf(&socket, "1.1.0"))
        .run(&runner)
        .expect("STATUS");
    assert_eq!(out.code(), Some(50), "{out:?}");
    assert!(message(&out).contains("no free IPv4 address"), "{out:?}");
}

/// The daemon answers STATUS's request (ready: nothing in it says otherwise yet).
#[test]
fn the_daemon_answers_ipam_status() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let mut s = UnixStream::connect(&a.socket).expect("connect");
    let line = serde_json::to_string(&Request::IpamStatus).expect("encode") + "\n";
    s.write_all(line.as_bytes()).expect("send");
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).expect("answer");
    let answer: Response = serde_json::from_str(&answer).expect("decode");
    assert!(matches!(answer, Response::Ok { .. }), "{answer:?}");
}
