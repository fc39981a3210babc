//! Authentication and access: strangers are closed before OPEN, a TCP-MD5 mismatch
//! never reaches Established, GTSM drops segments below TTL 255, the control socket
//! refuses users without permission, and malformed control requests get an error reply
//! while the daemon carries on.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use api::Response;
use bgp::wire::Message;
use interop::config::{Kernel, NodeConfig, Peer};
use interop::harness::{require_root, wait_until};
use interop::ipipd::{binary, Ipipd};
use interop::rawpeer::testbed::{fd_count, ipipd_pid, peer_status, Testbed, NODE};
use interop::rawpeer::{accept, default_open, listen, Event, RawPeer};

const WAIT: Duration = Duration::from_secs(10);

fn state(d: &Ipipd<'_>, a: Ipv4Addr) -> String {
    peer_status(d, a).map(|p| p.state).unwrap_or_default()
}

/// Fails if the session with `a` is Established at any moment during `d`.
fn never_established(ipipd: &Ipipd<'_>, a: Ipv4Addr, d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if state(ipipd, a) == "Established" {
            bail!("the session with {a} reached Established");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[test]
fn strangers_md5_and_gtsm() -> Result<()> {
    require_root();
    let tb = Testbed::new(7)?;
    let (plain, md5, gtsm, stranger, md5_good, md5_bad, active) = (
        Testbed::addr(0),
        Testbed::addr(1),
        Testbed::addr(2),
        Testbed::addr(3),
        Testbed::addr(4),
        Testbed::addr(5),
        Testbed::addr(6),
    );
    let peers = [
        Peer::new(plain).asn(64512),
        Peer::new(md5).asn(64512).password("alpha"),
        Peer::new(gtsm).asn(64512).ttl_security(),
        Peer::new(md5_good).asn(64512).password("alpha"),
        Peer::new(md5_bad).asn(64512).password("alpha"),
        Peer::new(active).asn(64512).passive(false).ttl_security(),
    ];
    // Listening before ipipd starts, so that its first attempt to connect succeeds.
    let listener = listen(
        &tb.peers.name,
        SocketAddr::new(IpAddr::V4(active), 179),
        Some(255),
    )?;
    let d = tb.start(&tb.config(&peers))?;

    // A configured peer comes up: the setup works.
    let p = RawPeer::establish(&tb.dial(plain), &default_open(64512, plain, 90))?;
    d.wait_established(&plain.to_string(), WAIT)?;
    drop(p);

    // ipipd connects to an active peer, with TTL 255 under ttl_security.
    let (stream, from) = accept(&listener, Duration::from_secs(40))?;
    let mut p = RawPeer::from_stream(stream)?;
    p.handshake(&default_open(64512, active, 90), WAIT)?;
    d.wait_established(&active.to_string(), WAIT)?;
    println!("ipipd connected from {from} and came up");
    drop((p, listener));

    // An address that is not a peer: accepted by TCP, closed before any OPEN.
    let mut s = RawPeer::connect(&tb.dial(stranger))?;
    match s.recv(WAIT)? {
        Event::Closed => {}
        other => bail!("a stranger got {other:?} instead of a closed connection"),
    }
    if !d.log().contains("not a configured peer") {
        bail!("the refusal of {stranger} is not logged");
    }

    // TCP-MD5: without a key the SYN is dropped, so the connection never opens.
    let mut dial = tb.dial(md5);
    dial.timeout = Duration::from_secs(3);
    if let Ok(mut c) = RawPeer::connect(&dial) {
        if let Ok(Event::Message(m)) = c.recv(Duration::from_secs(2)) {
            bail!("a connection without the TCP-MD5 key got {m:?}");
        }
    }
    never_established(&d, md5, Duration::from_secs(1))?;

    // TCP-MD5 between two ipipd: the right key comes up, a wrong key never does.
    let peer_config = |me: Ipv4Addr, password: &str| {
        let mut c = NodeConfig::bare(
            &me.to_string(),
            &[&format!("100.65.{}.0/26", me.octets()[3])],
        )
        .name(&format!("md5-{me}"))
        .asn(64512)
        .pools(&["100.64.0.0/10"])
        .no_mesh()
        .peer(&NODE.to_string(), |p| p.password(password));
        c.bgp.listen = Some(false);
        c.bgp.connect_retry_time = Some(1);
        c.kernel = Some(Kernel {
            install: Some(false),
            ..Kernel::default()
        });
        c.toml()
    };
    let good = Ipipd::start(&tb.peers, &peer_config(md5_good, "alpha"))?;
    let bad = Ipipd::start(&tb.peers, &peer_config(md5_bad, "beta"))?;
    d.wait_established(&md5_good.to_string(), Duration::from_secs(20))?;
    never_established(&d, md5_bad, Duration::from_secs(8))?;
    if state(&bad, NODE) == "Established" {
        bail!("the peer with the wrong key thinks it is Established");
    }
    drop((good, bad));

    // GTSM: a connection whose SYN came with TTL 1 is closed before OPEN; were it kept,
    // what the peer sends (TTL 1) would be dropped, so its OPEN would never arrive.
    let mut low = tb.dial(gtsm);
    low.ttl = Some(1);
    let mut c = RawPeer::connect(&low)?;
    match c.recv(WAIT)? {
        Event::Closed => println!("GTSM: a connection opened with TTL 1 was closed before OPEN"),
        Event::Message(Message::Open(_)) => {
            c.send(&Message::Open(default_open(64512, gtsm, 90)))?;
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                match c.recv(Duration::from_millis(500)) {
                    Ok(Event::Message(Message::Keepalive)) => {
                        bail!("ipipd answered an OPEN sent with TTL 1")
                    }
                    Ok(Event::Closed) => break,
                    _ => {}
                }
            }
            println!("GTSM: an OPEN sent with TTL 1 was never answered");
        }
        other => bail!("a peer sending with TTL 1 got {other:?}"),
    }
    never_established(&d, gtsm, Duration::from_secs(1))?;
    drop(c);
    // The same peer with TTL 255 comes up.
    let mut high = tb.dial(gtsm);
    high.ttl = Some(255);
    let _ok = RawPeer::establish(&high, &default_open(64512, gtsm, 90))?;
    d.wait_established(&gtsm.to_string(), WAIT)?;
    Ok(())
}

/// One request line on a fresh connection; the answer line, or None when the daemon closed.
fn ask(sock: &std::path::Path, line: &[u8]) -> Result<Option<Response>> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(WAIT))?;
    // The daemon stops reading an over-long line and answers; the rest of our write may
    // then fail, and the answer is still there to read.
    let _ = s.write_all(line);
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    if answer.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&answer).with_context(|| {
        format!("answer is not a control protocol response: {answer:?}")
    })?))
}

#[test]
fn control_socket_access_and_bad_requests() -> Result<()> {
    require_root();
    let tb = Testbed::new(1)?;
    let d = tb.start(&tb.config(&[Peer::new(Testbed::addr(0)).asn(64512)]))?;
    let sock = d.socket.clone();

    // A user without permission: a clear error and a non-zero exit.
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(binary())
        .args(["show", "peers", "--socket"])
        .arg(&sock)
        .output()
        .context("running setpriv")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("permission denied") {
        bail!(
            "as nobody: exit {:?}, stderr {stderr:?}, stdout {:?}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    println!("as nobody: {}", stderr.trim());

    let pid = ipipd_pid(&d)?;
    let fds_before = fd_count(pid)?;
    let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let long = format!(
        "{{\"request\":\"show-peers\",\"pad\":\"{}\"}}\n",
        "x".repeat(70 * 1024)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\n".to_vec()),
        ("not JSON", b"hello\n".to_vec()),
        (
            "unknown request",
            b"{\"request\":\"launch-missiles\"}\n".to_vec(),
        ),
        (
            "bad address",
            b"{\"request\":\"workload-add\",\"ip\":\"x\",\"interface\":\"cali1\"}\n".to_vec(),
        ),
        (
            "unknown field",
            b"{\"request\":\"show-peers\",\"extra\":1}\n".to_vec(),
        ),
        ("array", b"[1,2,3]\n".to_vec()),
        ("empty line", b"\n".to_vec()),
        ("NUL bytes", b"\0\0\0\n".to_vec()),
        ("invalid UTF-8", b"{\"request\":\"\xff\xfe\"}\n".to_vec()),
        ("nested 100000 deep", deep.into_bytes()),
        ("line over 64 KiB", long.into_bytes()),
        (
            "interface name with a slash",
            b"{\"request\":\"workload-add\",\"ip\":\"100.64.0.9\",\"interface\":\"../etc\"}\n"
                .to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, line) in &bad {
        match ask(&sock, line) {
            Ok(Some(Response::Error { message })) if !message.is_empty() => {}
            other => failures.push(format!("{name}: expected an error reply, got {other:?}")),
        }
    }
    // Several bad lines, then a good one, on one connection: the good one is answered.
    let mut s = UnixStream::connect(&sock)?;
    s.set_read_timeout(Some(WAIT))?;
    s.write_all(b"nope\n{\"request\":1}\n{\"request\":\"show-peers\"}\n")?;
    let answers: Vec<String> = BufReader::new(s)
        .lines()
        .take(3)
        .collect::<std::io::Result<_>>()?;
    let parsed: Vec<Option<Response>> = answers
        .iter()
        .map(|a| serde_json::from_str(a).ok())
        .collect();
    if !matches!(
        parsed.as_slice(),
        [
            Some(Response::Error { .. }),
            Some(Response::Error { .. }),
            Some(Response::Peers { .. })
        ]
    ) {
        failures.push(format!("pipelined requests: {answers:?}"));
    }
    // Clients that connect and say nothing do not block anyone.
    let idle: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&sock))
        .collect::<std::io::Result<_>>()?;
    let t = Instant::now();
    let peers = d.peers()?;
    if peers.len() != 1 || t.elapsed() > Duration::from_secs(2) {
        failures.push(format!(
            "show peers with 100 idle clients: {peers:?} in {:?}",
            t.elapsed()
        ));
    }
    drop(idle);
    let fds_after = wait_until(WAIT, "file descriptors back to where they were", || {
        let n = fd_count(pid).ok()?;
        (n <= fds_before).then_some(n)
    });
    if let Err(e) = fds_after {
        failures.push(format!(
            "{e:#}: {fds_before} before, {:?} now",
            fd_count(pid)
        ));
    }
    d.peers().context("ipipd stopped answering")?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
