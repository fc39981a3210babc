//! `PodNetlink`, the CNI plugin's blocking netlink, against the kernel: two network
//! namespaces standing for the node and a pod, everything the plugin does to a pod's veth,
//! and what `ip` sees of it. Runs without tokio (`--no-default-features` too).

use std::fs::File;
use std::net::IpAddr;

use fib::{Link, LinkRoute, PodNetlink};

fn ns(tag: &str) -> netns::Netns {
    netns::Netns::new(&format!("fib-{tag}-")).expect("create a test namespace")
}

fn route(s: &str) -> LinkRoute {
    LinkRoute {
        destination: s.parse().expect("a prefix"),
        gateway: None,
    }
}

#[test]
fn a_pods_veth_is_made_read_and_removed_over_blocking_netlink() {
    let node = ns("podnl");
    let pod = ns("podnl-pod");
    let pod_ns = File::open(pod.path()).expect("the pod's namespace");
    const ROUTES: u32 = 2000;
    let found = node
        .in_netns(move || {
            let mut nl = PodNetlink::open().expect("a socket");
            assert_eq!(nl.link("cali0").expect("lookup"), None, "no device yet");
            let mac = [0xee; 6];
            nl.create_veth("cali0", mac, "eth0", &pod_ns, 1400)
                .expect("the veth");
            let again = nl
                .create_veth("cali0", mac, "eth0", &pod_ns, 1400)
                .expect_err("the name is taken");
            assert_eq!(again.errno(), Some(libc::EEXIST));
            assert_eq!(
                again.to_string(),
                "kernel refused to create veth cali0 / eth0"
            );

            let (link, peer) = nl.link_peer("cali0").expect("lookup").expect("the device");
            let peer = peer.expect("a veth has a peer");
            assert!(peer.netnsid.is_some(), "the peer is in another namespace");
            assert_eq!(nl.netns_id(&pod_ns).expect("the id"), peer.netnsid);
            assert_eq!((link.mtu, link.up), (1400, false));
            assert_eq!(
                nl.mac("cali0").expect("lookup").as_deref(),
                Some("ee:ee:ee:ee:ee:ee")
            );

            nl.set_up(&link, Some(1450)).expect("up");
            let link = nl.link("cali0").expect("lookup").expect("the device");
            assert_eq!((link.mtu, link.up), (1450, true));

            let v4: IpAddr = "10.99.0.1".parse().expect("an address");
            let v6: IpAddr = "fd00:99::1".parse().expect("an address");
            for a in [v4, v6, v4] {
                nl.add_host_address(&link, a)
                    .expect("an address, again too");
            }
            let mut addresses = nl.host_addresses(&link).expect("the addresses");
            addresses.sort();
            assert_eq!(addresses, [v4, v6]);

            // Enough routes for the dump to span many datagrams.
            let mut want = Vec::new();
            for i in 0..ROUTES {
                let r = route(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256));
                nl.add_route(&link, &r, 186).expect("a route");
                want.push(r);
            }
            let mut routes = nl.routes(&link).expect("the routes");
            routes.retain(|r| r.destination.prefix_len() == 24);
            routes.sort_by_key(|r| r.destination);
            want.sort_by_key(|r| r.destination);
            assert_eq!(routes, want);

            let gone = Link {
                index: 999_999,
                ..link.clone()
            };
            let refused = nl
                .add_route(&gone, &route("10.98.0.0/24"), 186)
                .expect_err("no such device");
            assert_eq!(
                refused.to_string(),
                "kernel refused to add route 10.98.0.0/24 on cali0"
            );

            let shown = netns::ip(&["route", "show", "proto", "186"]).expect("ip route");
            assert!(nl.delete_link("cali0").expect("delete"), "it was there");
            assert!(!nl.delete_link("cali0").expect("delete"), "not any more");
            assert_eq!(nl.link("cali0").expect("lookup"), None);
            shown
        })
        .expect("inside the node");
    assert_eq!(found.lines().count(), ROUTES as usize, "{found}");
    let inside = pod.ip(&["-o", "link", "show"]).expect("ip link");
    assert!(!inside.contains("eth0"), "the peer went with it: {inside}");
}
