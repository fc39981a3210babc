//! The CNI spec's rules where a node is under strain: DEL and GC that touch only what is
//! theirs, GC kept to its network, DEL that is not lost while the daemon is away, an ADD
//! that fails after the daemon answered, results in the shape of their version, ADD chained
//! after another plugin, CHECK against the kernel, STATUS that follows what ADD could do.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};

use api::protocol::{IpamErrorKind, Request, Response};
use api::spool::PendingRelease;
use interop::harness::TempDir;

use super::*;

/// The host end of `default/web-0`'s veth: cali + sha1("default.web-0")[..11].
const WEB_0: &str = "cali0d7763386da";
const WEB_0_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0";

/// `conf` with `key` set.
fn with(conf: &str, key: &str, value: serde_json::Value) -> String {
    let mut c: serde_json::Value = serde_json::from_str(conf).unwrap_or_default();
    c[key] = value;
    c.to_string()
}

fn call<'a>(command: &'a str, id: &'a str, pod: &Netns, conf: &str, args: &str) -> Call<'a> {
    let mut c = Call::new(command, id, Some(pod), conf.to_string());
    c.args = Some(args.to_string());
    c
}

fn message(out: &interop::cni::Outcome) -> String {
    out.json()["msg"].as_str().unwrap_or_default().to_string()
}

fn has_link(ns: &Netns, name: &str) -> bool {
    ns.ip(&["link", "show", name]).is_ok()
}

/// A StatefulSet pod recreated on the node has the same host veth name in a new sandbox: a
/// late DEL of the old sandbox, and a DEL of an interface the new one does not have (a
/// second network's, whose ADD failed), must leave the new sandbox's veth alone.
#[test]
fn del_removes_only_the_veth_of_its_own_sandbox() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let (old, new) = (pod(), pod());
    let out = call("ADD", "old", &old, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("ADD old");
    assert!(out.ok(), "{out:?}");
    let out = call("ADD", "new", &new, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("ADD new");
    assert!(out.ok(), "{out:?}");
    let ip = out.address().expect("address");
    assert_eq!(out.json()["interfaces"][0]["name"], WEB_0);

    let out = call("DEL", "old", &old, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("DEL old");
    assert!(out.ok(), "{out:?}");
    assert!(
        has_link(&na, WEB_0),
        "the late DEL took the new sandbox's veth"
    );
    assert!(has_link(&new, "eth0"));
    let mut net1 = call("DEL", "new", &new, &conf, WEB_0_ARGS);
    net1.ifname = "net1";
    let out = net1.run(&na).expect("DEL net1");
    assert!(out.ok(), "{out:?}");
    assert!(has_link(&na, WEB_0), "DEL of net1 took eth0's veth");
    assert!(ping(&new, &ip), "the new sandbox still has its address");
    assert!(na.bgp_routes().contains(&format!("{ip} dev {WEB_0}")));
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(1),
        "only the old sandbox's address went"
    );

    let out = call("DEL", "new", &new, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("DEL new");
    assert!(out.ok(), "{out:?}");
    assert!(!has_link(&na, WEB_0));
    assert_eq!(allocated(&a, BLOCK_A), Some(0));
}

/// GC releases the old sandbox of a recreated pod, whose allocation names the host veth
/// the new sandbox now has: the address goes, the veth stays.
#[test]
fn gc_keeps_a_host_veth_that_a_live_attachment_uses() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.1.0");
    let (old, new) = (pod(), pod());
    assert!(call("ADD", "old", &old, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("ADD")
        .ok());
    let out = call("ADD", "new", &new, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("ADD");
    assert!(out.ok(), "{out:?}");
    let ip = out.address().expect("address");

    let gc = with(
        &conf,
        "cni.dev/valid-attachments",
        serde_json::json!([{"containerID": "new", "ifname": "eth0"}]),
    );
    let out = Call::new("GC", "", None, gc).run(&na).expect("GC");
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(1),
        "the old sandbox's address is free"
    );
    assert!(has_link(&na, WEB_0), "GC took the live sandbox's veth");
    assert!(ping(&new, &ip));
    assert!(call("DEL", "new", &new, &conf, WEB_0_ARGS)
        .run(&na)
        .expect("DEL")
        .ok());
}

/// Two networks served by one daemon: GC of one leaves the other's attachments alone, and
/// a GC without `cni.dev/valid-attachments` releases nothing.
#[test]
fn gc_touches_only_its_own_network_and_nothing_without_valid_attachments() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let first = cni::conf(&a.socket, "1.1.0");
    let second = with(&first, "name", "second".into());
    let (p1, p2) = (pod(), pod());
    cni::add(&na, &p1, "p1", &first).expect("ADD on the first network");
    cni::add(&na, &p2, "p2", &second).expect("ADD on the second network");

    let out = Call::new("GC", "", None, first.clone())
        .run(&na)
        .expect("GC");
    assert_eq!(out.code(), Some(7), "{out:?}");
    assert!(message(&out).contains("valid-attachments"), "{out:?}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(2),
        "a GC without the list released"
    );
    assert_eq!(cali_links(&na).len(), 2);

    let valid = |id: &str| serde_json::json!([{"containerID": id, "ifname": "eth0"}]);
    let gc = with(&second, "cni.dev/valid-attachments", valid("p2"));
    assert!(Call::new("GC", "", None, gc).run(&na).expect("GC").ok());
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(2),
        "GC of the second network released the first's"
    );
    assert_eq!(cali_links(&na).len(), 2);

    let gc = with(&first, "cni.dev/valid-attachments", serde_json::json!([]));
    assert!(Call::new("GC", "", None, gc).run(&na).expect("GC").ok());
    let left: Vec<Option<String>> = a
        .workloads()
        .expect("list")
        .into_iter()
        .map(|w| w.handle)
        .collect();
    assert_eq!(left, vec![Some("p2.eth0".to_string())]);
    assert_eq!(cali_links(&na).len(), 1);
    cni::del(&na, Some(&p2), "p2", &second).expect("DEL");
}

/// The runtime removed the pod's namespace before DEL and left its mount point behind (a
/// file that is no namespace): nothing to remove, the address is released, DEL succeeds.
#[test]
fn del_releases_the_address_when_the_pod_namespace_is_gone() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let p = pod();
    cni::add(&na, &p, "gone", &conf).expect("ADD");
    let placeholder = a.dir.join("netns-mount-point");
    std::fs::write(&placeholder, b"").expect("placeholder");
    drop(p);
    // The kernel removes the namespace's devices, the veth with them, a little later.
    wait_until(T, "the veth gone with its namespace", || {
        cali_links(&na).is_empty().then_some(())
    })
    .expect("veth gone");
    let mut del = Call::new("DEL", "gone", None, conf.clone());
    del.netns = Some(placeholder.display().to_string());
    let out = del.run(&na).expect("DEL");
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(0),
        "the address stayed allocated"
    );
    assert!(cali_links(&na).is_empty());
    del.netns = Some(a.dir.join("no-such-namespace").display().to_string());
    assert!(del.run(&na).expect("DEL again").ok());
}

/// The daemon holds an allocation for the handle already (an ADD whose answer was lost)
/// and the next ADD fails after the daemon answered: the address goes back all the same.
#[test]
fn an_add_that_fails_after_the_daemon_answered_gives_the_address_back() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let request = Request::IpamAssign {
        container_id: "lost".into(),
        ifname: "eth0".into(),
        interface: "cali0123456789a".into(),
        pod_namespace: None,
        pod_name: None,
        network: Some("ipipd".into()),
        ips: Vec::new(),
    };
    let answer = api::call(&a.socket, &request).expect("assign");
    assert!(matches!(answer, Response::Assigned(_)), "{answer:?}");
    assert_eq!(allocated(&a, BLOCK_A), Some(1));
    let p = pod();
    p.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other",
    ])
    .expect("squatter");
    let out = Call::new("ADD", "lost", Some(&p), conf.clone())
        .run(&na)
        .expect("ADD");
    assert_eq!(out.code(), Some(101), "{out:?}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(0),
        "the failed ADD kept the address"
    );
    assert!(cali_links(&na).is_empty());
}

/// The `ips` capability (`podman run --ip`): the requested address is the pod's; the
/// same address asked for again is refused with a message naming its holder, and
/// nothing of the second pod is left behind; an empty request is no request.
#[test]
fn a_requested_address_is_given_once_and_a_refusal_leaves_nothing_behind() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.1.0");
    let asked = with(
        &conf,
        "runtimeConfig",
        serde_json::json!({"ips": ["101.76.9.140/32"]}),
    );
    let first = pod();
    let out = Call::new("ADD", "asks", Some(&first), asked.clone())
        .run(&na)
        .expect("ADD");
    assert!(out.ok(), "{out:?}");
    let r = out.json();
    assert_eq!(r["ips"][0]["address"], "101.76.9.140/32", "{r}");
    let second = pod();
    let out = Call::new("ADD", "again", Some(&second), asked)
        .run(&na)
        .expect("ADD");
    assert_eq!(out.code(), Some(102), "{out:?}");
    assert!(
        message(&out).contains("101.76.9.140 is in use by asks.eth0"),
        "{out:?}"
    );
    assert_eq!(allocated(&a, BLOCK_A), Some(1));
    assert_eq!(cali_links(&na).len(), 1, "the refused pod left a veth");
    assert!(!has_link(&second, "eth0"));
    let none = with(&conf, "runtimeConfig", serde_json::json!({"ips": []}));
    cni::add(&na, &second, "again", &none).expect("ADD without a request");
    cni::del(&na, Some(&second), "again", &conf).expect("DEL");
    cni::del(&na, Some(&first), "asks", &conf).expect("DEL");
}

/// `ips[].version` exists in 0.3.x and 0.4.0 results only.
#[test]
fn results_have_the_shape_of_their_version() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let p = pod();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = cni::conf(&a.socket, version);
        let out = Call::new("ADD", "shape", Some(&p), conf.clone())
            .run(&na)
            .expect("ADD");
        assert!(out.ok(), "{version}: {out:?}");
        let r = out.json();
        assert_eq!(r["cniVersion"], version);
        let ip = &r["ips"][0];
        if version.starts_with("0.") {
            assert_eq!(ip["version"], "4", "{version}: {r}");
        } else {
            assert!(ip.get("version").is_none(), "{version}: {r}");
        }
        cni::del(&na, Some(&p), "shape", &conf).expect("DEL");
    }
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

/// Chained after another plugin, ADD passes the previous result on with its own interfaces,
/// addresses and routes appended, and CHECK finds its own among the chain's.
#[test]
fn add_chained_after_another_plugin_passes_the_previous_result_on() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let p = pod();
    let prev = serde_json::json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "dummy0", "sandbox": netns_path(&p.name)}],
        "ips": [{"address": "192.0.2.5/24", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]},
    });
    let chained = with(&conf, "prevResult", prev.clone());
    let out = Call::new("ADD", "chained", Some(&p), chained)
        .run(&na)
        .expect("ADD");
    assert!(out.ok(), "{out:?}");
    let r = out.json();
    assert_eq!(r["interfaces"][0], prev["interfaces"][0], "{r}");
    assert_eq!(r["interfaces"][2]["name"], "eth0", "{r}");
    assert_eq!(r["ips"][0], prev["ips"][0], "{r}");
    assert_eq!(r["ips"][1]["address"], "101.76.9.129/32", "{r}");
    assert_eq!(r["ips"][1]["interface"], 2, "{r}");
    assert_eq!(r["routes"][0], prev["routes"][0], "{r}");
    assert_eq!(r["routes"][1]["dst"], "0.0.0.0/0", "{r}");
    assert_eq!(r["dns"], prev["dns"], "{r}");

    let check = with(&conf, "prevResult", r);
    let out = Call::new("CHECK", "chained", Some(&p), check)
        .run(&na)
        .expect("CHECK");
    assert!(out.ok(), "{out:?}");
    cni::del(&na, Some(&p), "chained", &conf).expect("DEL");
}

/// CHECK compares both ends of the veth with the kernel (MTU, MAC, peer) and with what
/// prevResult says, naming the first difference.
#[test]
fn check_finds_mtu_and_mac_that_differ() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let p = pod();
    let out = Call::new("ADD", "c", Some(&p), conf.clone())
        .run(&na)
        .expect("ADD");
    assert!(out.ok(), "{out:?}");
    let r = out.json();
    let host = r["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let check = |prev: &serde_json::Value| {
        Call::new(
            "CHECK",
            "c",
            Some(&p),
            with(&conf, "prevResult", prev.clone()),
        )
        .run(&na)
        .expect("CHECK")
    };
    let fails_naming = |prev: &serde_json::Value, what: &str| {
        let out = check(prev);
        assert_eq!(out.code(), Some(103), "{what}: {out:?}");
        assert!(message(&out).contains(what), "{what}: {out:?}");
    };
    assert!(check(&r).ok());

    p.ip(&["link", "set", "eth0", "mtu", "1400"]).expect("mtu");
    fails_naming(&r, "mtu of eth0 in the pod is 1400, should be 1480");
    p.ip(&["link", "set", "eth0", "mtu", "1480"]).expect("mtu");
    na.ip(&["link", "set", &host, "mtu", "1400"]).expect("mtu");
    fails_naming(&r, &format!("mtu of {host} on the host is 1400"));
    na.ip(&["link", "set", &host, "mtu", "1480"]).expect("mtu");
    assert!(check(&r).ok());

    na.ip(&["link", "set", &host, "address", "ee:ee:ee:ee:ee:ef"])
        .expect("mac");
    fails_naming(&r, &format!("mac of {host} is ee:ee:ee:ee:ee:ef"));
    na.ip(&["link", "set", &host, "address", "ee:ee:ee:ee:ee:ee"])
        .expect("mac");
    let mut other_mac = r.clone();
    other_mac["interfaces"][1]["mac"] = "02:00:00:00:00:99".into();
    fails_naming(&other_mac, "prevResult says 02:00:00:00:00:99");
    let mut unlisted = r.clone();
    unlisted["interfaces"][0]["name"] = "cali00000000000".into();
    fails_naming(&unlisted, &format!("prevResult does not list {host}"));
    assert!(check(&r).ok());
    cni::del(&na, Some(&p), "c", &conf).expect("DEL");
}

/// DEL while the daemon is down: the veth goes, the release waits in the spool beside the
/// socket, and DEL succeeds, so a runtime that does not retry loses nothing. An ADD of the
/// same handle afterwards voids the pending release.
#[test]
fn del_while_the_daemon_is_down_is_spooled() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let mut a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let p = pod();
    cni::add(&na, &p, "away", &conf).expect("ADD");
    a.stop("TERM").expect("stop");
    let out = Call::new("DEL", "away", Some(&p), conf.clone())
        .run(&na)
        .expect("DEL");
    assert!(out.ok(), "{out:?}");
    assert!(cali_links(&na).is_empty(), "{:?}", cali_links(&na));
    assert!(!has_link(&p, "eth0"));
    let spool = api::spool::dir(&a.socket);
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&spool)
        .expect("the spool")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let pending: PendingRelease = serde_json::from_slice(&std::fs::read(&files[0]).expect("read"))
        .expect("a pending release");
    assert_eq!(pending.handle, "away.eth0");
    assert_eq!(pending.network.as_deref(), Some("ipipd"));
    assert!(files[0]
        .extension()
        .is_some_and(|e| e == api::spool::EXTENSION));

    a.restart().expect("restart");
    cni::add(&na, &p, "away", &conf).expect("ADD again");
    assert!(
        !files[0].exists(),
        "the pending release outlived a new ADD of its handle"
    );
    cni::del(&na, Some(&p), "away", &conf).expect("DEL");
    assert_eq!(allocated(&a, BLOCK_A), Some(0));
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
