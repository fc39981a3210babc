//! The desired route set: a pure function of the inputs, the IPIP mode and the underlay.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::vtep::Macs;
use crate::{Inputs, Mode, NextHop, Route, RouteKind};

/// The desired set for these inputs; `underlay` is the (subnet, interface name) of the node
/// address, if known.
///
/// Precedence when prefixes collide: a local workload beats an own block, which beats a
/// remote route, since local knowledge is the more trustworthy.
pub fn desired(
    inputs: &Inputs,
    mode: Mode,
    tunnel: &str,
    underlay: Option<&(IpNet, String)>,
) -> BTreeMap<IpNet, Route> {
    let mut out = BTreeMap::new();
    let v6 = inputs.vxlan_v6.as_ref().map(|(d, v)| (d.as_str(), v));
    for (prefix, gateways) in &inputs.remote {
        let vteps = inputs.vteps.as_ref();
        if let Some(route) = remote_route(*prefix, gateways, mode, tunnel, underlay, vteps, v6) {
            out.insert(route.prefix, route);
        }
    }
    for block in &inputs.own_blocks {
        let prefix = block.trunc();
        out.insert(
            prefix,
            Route {
                prefix,
                kind: RouteKind::Blackhole,
            },
        );
    }
    for (ip, device) in &inputs.workloads {
        let prefix = host_prefix(*ip);
        out.insert(
            prefix,
            Route {
                prefix,
                kind: RouteKind::Link {
                    device: device.clone(),
                },
            },
        );
    }
    out
}

/// The mode for one IPv4 gateway: with a set of known tunnel endpoints (VXLAN), a
/// gateway outside it is routed without encapsulation, as with `never`.
pub(crate) fn mode_for(mode: Mode, gateway: Ipv4Addr, vteps: Option<&Macs<Ipv4Addr>>) -> Mode {
    match vteps {
        Some(known) if !known.contains_key(&gateway) => Mode::Never,
        _ => mode,
    }
}

/// VXLAN over IPv6: the IPv6 device and the IPv6 next hops it can reach (the known
/// nodes' IPv6 addresses, with their IPv6 VTEP MACs).
pub type V6Tunnel<'a> = (&'a str, &'a Macs<Ipv6Addr>);

/// The route for one remote prefix and its best next hops, or `None` when no next hop can
/// serve it. `vteps`: the gateways that can be tunnelled to (`None`: every one). `v6`:
/// IPv6 gateways in its set go through its device (unless the mode is `never`), via the
/// link-local address of their VTEP ([`crate::vtep::Vtep::v6`]); every other IPv6
/// gateway is routed natively.
pub fn remote_route(
    prefix: IpNet,
    gateways: &[IpAddr],
    mode: Mode,
    tunnel: &str,
    underlay: Option<&(IpNet, String)>,
    vteps: Option<&Macs<Ipv4Addr>>,
    v6: Option<V6Tunnel<'_>>,
) -> Option<Route> {
    let prefix = prefix.trunc();
    let mut hops: Vec<NextHop> = gateways
        .iter()
        .filter_map(|gw| {
            let mode = match gw {
                IpAddr::V4(v4) => mode_for(mode, *v4, vteps),
                IpAddr::V6(_) => mode,
            };
            let through_v6 = match (prefix, gw, v6) {
                (IpNet::V6(_), IpAddr::V6(a), Some((device, known))) if mode != Mode::Never => {
                    known
                        .get(a)
                        .map(|mac| (device, crate::vtep::Vtep::v6(*a, *mac)))
                }
                _ => None,
            };
            match through_v6 {
                Some((device, vtep)) => Some(NextHop {
                    gateway: vtep.next_hop,
                    device: Some(device.to_string()),
                    onlink: false,
                }),
                None => next_hop(prefix, *gw, mode, tunnel, underlay),
            }
        })
        .collect();
    hops.sort();
    hops.dedup_by(|a, b| a.gateway == b.gateway);
    if hops.is_empty() {
        return None;
    }
    Some(Route {
        prefix,
        kind: RouteKind::Via(hops),
    })
}

/// How one gateway of `prefix` is reached, or `None` when it cannot serve that prefix
/// (other address family, or a link-local IPv6 gateway with no known underlay interface).
fn next_hop(
    prefix: IpNet,
    gateway: IpAddr,
    mode: Mode,
    tunnel: &str,
    underlay: Option<&(IpNet, String)>,
) -> Option<NextHop> {
    match (prefix, gateway) {
        (IpNet::V4(_), IpAddr::V4(_)) => {
            let direct = underlay.filter(|(subnet, _)| subnet.contains(&gateway));
            Some(match (mode, direct) {
                (Mode::Never, _) => NextHop {
                    gateway,
                    device: None,
                    onlink: false,
                },
                (Mode::CrossSubnet, Some((_, ifname))) => NextHop {
                    gateway,
                    device: Some(ifname.clone()),
                    onlink: false,
                },
                (Mode::Always | Mode::CrossSubnet, _) => NextHop {
                    gateway,
                    device: Some(tunnel.to_string()),
                    onlink: true,
                },
            })
        }
        // IPv6 never goes through the IPv4 tunnel: it is routed natively (or through the
        // IPv6 VXLAN device, decided by the caller).
        (IpNet::V6(_), IpAddr::V6(v6)) => {
            if v6.segments()[0] & 0xffc0 == 0xfe80 {
                let (_, ifname) = underlay?;
                Some(NextHop {
                    gateway,
                    device: Some(ifname.clone()),
                    onlink: false,
                })
            } else {
                Some(NextHop {
                    gateway,
                    device: None,
                    onlink: false,
                })
            }
        }
        _ => None,
    }
}

pub(crate) fn host_prefix(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::from(a)),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::from(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }
    fn tun(gw: &str) -> NextHop {
        NextHop {
            gateway: ip(gw),
            device: Some("tunl0".into()),
            onlink: true,
        }
    }
    fn dev(gw: &str, d: &str) -> NextHop {
        NextHop {
            gateway: ip(gw),
            device: Some(d.into()),
            onlink: false,
        }
    }
    fn plain(gw: &str) -> NextHop {
        NextHop {
            gateway: ip(gw),
            device: None,
            onlink: false,
        }
    }
    fn underlay() -> (IpNet, String) {
        (net("172.29.235.0/24"), "eth0".into())
    }
    fn remote(entries: &[(&str, &[&str])]) -> Inputs {
        Inputs {
            remote: entries
                .iter()
                .map(|(p, gws)| (net(p), gws.iter().map(|g| ip(g)).collect()))
                .collect(),
            ..Inputs::default()
        }
    }
    fn kind_of(set: &BTreeMap<IpNet, Route>, p: &str) -> Option<RouteKind> {
        set.get(&net(p)).map(|r| r.kind.clone())
    }

    #[test]
    fn always_goes_through_the_tunnel_onlink() {
        let inputs = remote(&[("101.88.228.192/26", &["172.29.235.130"])]);
        let set = desired(&inputs, Mode::Always, "tunl0", Some(&underlay()));
        assert_eq!(set.len(), 1);
        assert_eq!(
            kind_of(&set, "101.88.228.192/26"),
            Some(RouteKind::Via(vec![tun("172.29.235.130")]))
        );
    }

    #[test]
    fn always_without_known_underlay_still_tunnels() {
        let inputs = remote(&[("10.1.0.0/26", &["192.168.7.7"])]);
        let set = desired(&inputs, Mode::Always, "tunl0", None);
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![tun("192.168.7.7")]))
        );
    }

    #[test]
    fn cross_subnet_tunnels_only_outside_the_subnet() {
        let inputs = remote(&[
            ("10.1.0.0/26", &["172.29.235.130"]),
            ("10.2.0.0/26", &["172.29.236.5"]),
        ]);
        let set = desired(&inputs, Mode::CrossSubnet, "tunl0", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![dev("172.29.235.130", "eth0")]))
        );
        assert_eq!(
            kind_of(&set, "10.2.0.0/26"),
            Some(RouteKind::Via(vec![tun("172.29.236.5")]))
        );
    }

    #[test]
    fn cross_subnet_without_underlay_tunnels_everything() {
        let inputs = remote(&[("10.1.0.0/26", &["172.29.235.130"])]);
        let set = desired(&inputs, Mode::CrossSubnet, "tunl0", None);
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![tun("172.29.235.130")]))
        );
    }

    #[test]
    fn never_lets_the_kernel_pick_the_device() {
        let inputs = remote(&[("10.1.0.0/26", &["172.29.236.5"])]);
        let set = desired(&inputs, Mode::Never, "tunl0", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![plain("172.29.236.5")]))
        );
    }

    #[test]
    fn several_next_hops_make_one_multipath_route() {
        let inputs = remote(&[(
            "10.1.0.0/26",
            &["172.29.235.131", "172.29.235.130", "172.29.235.130"],
        )]);
        let set = desired(&inputs, Mode::Always, "tunl0", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![
                tun("172.29.235.130"),
                tun("172.29.235.131")
            ]))
        );
    }

    #[test]
    fn multipath_in_cross_subnet_decides_per_next_hop() {
        let inputs = remote(&[("10.1.0.0/26", &["172.29.235.130", "192.168.1.1"])]);
        let set = desired(&inputs, Mode::CrossSubnet, "tunl0", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![
                dev("172.29.235.130", "eth0"),
                tun("192.168.1.1")
            ]))
        );
    }

    #[test]
    fn own_blocks_are_blackholed_and_win_over_remote() {
        let mut inputs = remote(&[("101.76.9.128/26", &["172.29.235.130"])]);
        inputs.own_blocks = vec![net("101.76.9.128/26"), net("fd00:1::/122")];
        let set = desired(&inputs, Mode::Always, "tunl0", Some(&underlay()));
        assert_eq!(kind_of(&set, "101.76.9.128/26"), Some(RouteKind::Blackhole));
        assert_eq!(kind_of(&set, "fd00:1::/122"), Some(RouteKind::Blackhole));
    }

    #[test]
    fn workloads_are_host_routes_on_their_veth() {
        let inputs = Inputs {
            own_blocks: vec![net("101.76.9.128/26")],
            workloads: vec![
                (ip("101.76.9.136"), "califf66d1cee04".into()),
                (ip("fd00:1::8"), "cali0123".into()),
            ],
            ..Inputs::default()
        };
        let set = desired(&inputs, Mode::Always, "tunl0", None);
        assert_eq!(
            kind_of(&set, "101.76.9.136/32"),
            Some(RouteKind::Link {
                device: "califf66d1cee04".into()
            })
        );
        assert_eq!(
            kind_of(&set, "fd00:1::8/128"),
            Some(RouteKind::Link {
                device: "cali0123".into()
            })
        );
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn ipv6_is_routed_natively_in_every_mode() {
        let inputs = remote(&[
            ("fd00:2::/122", &["fd00::2"]),
            ("fd00:3::/122", &["fe80::1"]),
        ]);
        for mode in [Mode::Always, Mode::CrossSubnet, Mode::Never] {
            let set = desired(&inputs, mode, "tunl0", Some(&underlay()));
            assert_eq!(
                kind_of(&set, "fd00:2::/122"),
                Some(RouteKind::Via(vec![plain("fd00::2")]))
            );
            assert_eq!(
                kind_of(&set, "fd00:3::/122"),
                Some(RouteKind::Via(vec![dev("fe80::1", "eth0")]))
            );
        }
        // A link-local gateway needs an interface; without one the route cannot be built.
        let set = desired(&inputs, Mode::Always, "tunl0", None);
        assert_eq!(kind_of(&set, "fd00:3::/122"), None);
    }

    #[test]
    fn vxlan_tunnels_only_to_known_endpoints() {
        let mut inputs = remote(&[
            ("10.1.0.0/26", &["172.29.236.5"]),
            ("10.2.0.0/26", &["172.29.236.9"]),
        ]);
        inputs.vteps = Some(crate::vtep::derived([ip4("172.29.236.5")]));
        let set = desired(&inputs, Mode::Always, "vxlan.calico", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "10.1.0.0/26"),
            Some(RouteKind::Via(vec![NextHop {
                gateway: ip("172.29.236.5"),
                device: Some("vxlan.calico".into()),
                onlink: true,
            }]))
        );
        assert_eq!(
            kind_of(&set, "10.2.0.0/26"),
            Some(RouteKind::Via(vec![plain("172.29.236.9")])),
            "a next hop with no VTEP known goes unencapsulated"
        );
    }

    #[test]
    fn the_ipv6_next_hop_is_the_link_local_address_of_the_known_mac() {
        let mut inputs = remote(&[("fd10::2:0/122", &["fd00:29::130"])]);
        let mac = [0x0a, 0x12, 0x34, 0x56, 0x78, 0x9a];
        let known = [("fd00:29::130".parse().expect("v6"), mac)].into();
        inputs.vxlan_v6 = Some(("vxlan-v6.calico".into(), known));
        let set = desired(&inputs, Mode::Always, "vxlan.calico", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "fd10::2:0/122"),
            Some(RouteKind::Via(vec![NextHop {
                gateway: ip("fe80::812:34ff:fe56:789a"),
                device: Some("vxlan-v6.calico".into()),
                onlink: false,
            }]))
        );
    }

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn mismatched_families_and_empty_hops_are_skipped() {
        let inputs = remote(&[("10.1.0.0/26", &["fd00::2"]), ("10.2.0.0/26", &[])]);
        let set = desired(&inputs, Mode::Always, "tunl0", None);
        assert!(set.is_empty(), "{set:?}");
    }

    #[test]
    fn host_bits_are_cleared() {
        let inputs = remote(&[("10.1.0.5/26", &["172.29.235.130"])]);
        let set = desired(&inputs, Mode::Always, "tunl0", None);
        assert!(set.contains_key(&net("10.1.0.0/26")), "{set:?}");
    }

    #[test]
    fn matching_ignores_device_only_where_none_was_asked_for() {
        let want = RouteKind::Via(vec![plain("10.0.0.1")]);
        assert!(want.matches(&RouteKind::Via(vec![dev("10.0.0.1", "eth0")])));
        let want = RouteKind::Via(vec![tun("10.0.0.1")]);
        assert!(!want.matches(&RouteKind::Via(vec![dev("10.0.0.1", "eth0")])));
        assert!(
            !want.matches(&RouteKind::Via(vec![dev("10.0.0.1", "tunl0")])),
            "onlink differs"
        );
        let two = RouteKind::Via(vec![tun("10.0.0.1"), tun("10.0.0.2")]);
        assert!(two.matches(&RouteKind::Via(vec![tun("10.0.0.2"), tun("10.0.0.1")])));
        assert!(!two.matches(&RouteKind::Via(vec![tun("10.0.0.2")])));
        assert!(!RouteKind::Blackhole.matches(&RouteKind::Link { device: "x".into() }));
    }

    #[test]
    fn ipv6_goes_through_the_v6_device_only_to_known_nodes() {
        let mut inputs = remote(&[
            ("fd10::2:0/122", &["fd00:29::130"]),
            ("fd10::3:0/122", &["fd00:29::99"]),
        ]);
        let known = crate::vtep::derived(["fd00:29::130".parse::<Ipv6Addr>().expect("v6")]);
        inputs.vxlan_v6 = Some(("vxlan-v6.calico".into(), known));
        let set = desired(&inputs, Mode::Always, "vxlan.calico", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "fd10::2:0/122"),
            Some(RouteKind::Via(vec![NextHop {
                gateway: ip("fe80::6476:ff:fe00:130"),
                device: Some("vxlan-v6.calico".into()),
                onlink: false,
            }]))
        );
        assert_eq!(
            kind_of(&set, "fd10::3:0/122"),
            Some(RouteKind::Via(vec![plain("fd00:29::99")])),
            "a next hop of no known node is routed natively"
        );
        let set = desired(&inputs, Mode::Never, "vxlan.calico", Some(&underlay()));
        assert_eq!(
            kind_of(&set, "fd10::2:0/122"),
            Some(RouteKind::Via(vec![plain("fd00:29::130")]))
        );
    }
}
