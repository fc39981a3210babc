//! VXLAN in etcd mode: the MAC of this node's VXLAN devices is the node's own choice,
//! recorded in its node record (as Calico keeps `vxlanTunnelMACAddr` and
//! `vxlanTunnelMACAddrV6` in its Node resource), and the other nodes take it from there.
//!
//! The choice, per device: the MAC the node's record already has (stable over restarts,
//! a wiped `state_dir` and a reboot), else the MAC the device in the kernel already has
//! (a node whose record is gone: the device keeps its MAC and no packet is lost), else a
//! fresh random locally administered unicast MAC. A record without a MAC stands for the
//! MAC derived from the node's address ([`fib::vtep::vtep_mac`]), for its own node as
//! for the others: the records of earlier versions have none (their devices have the
//! derived MAC), and a node records its MAC only when it differs from the derived one
//! ([`recorded`]), so that earlier versions, which refuse fields they do not know,
//! still read the records of the nodes upgraded in place. With the file datastore the
//! MAC stays derived.

use config::{Config, IpipMode};
use datastore::{Mac, NodeRecord};
use fib::vtep::{vtep_mac, vtep_mac_v6};

/// The MACs of this node's VXLAN devices (IPv4, IPv6); `None`: no such device, or (for
/// the kernel) none found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Macs {
    pub v4: Option<[u8; 6]>,
    pub v6: Option<[u8; 6]>,
}

/// The MAC to use: the record's, else the device's, else `fresh()`.
pub fn choose(
    record: Option<[u8; 6]>,
    device: Option<[u8; 6]>,
    fresh: impl FnOnce() -> [u8; 6],
) -> [u8; 6] {
    record
        .or(device.filter(|m| usable(*m)))
        .unwrap_or_else(fresh)
}

/// A unicast MAC other than all zeros: one a VXLAN device can carry and the other
/// nodes can send to.
fn usable(mac: [u8; 6]) -> bool {
    mac[0] & 1 == 0 && mac != [0; 6]
}

/// A random locally administered unicast MAC (what Calico gives its VXLAN devices).
pub fn random() -> [u8; 6] {
    let mut mac = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut mac));
    if read.is_err() {
        // No /dev/urandom: the standard library's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        mac.copy_from_slice(&h.finish().to_le_bytes()[..6]);
    }
    locally_administered(mac)
}

/// `mac` with the multicast bit cleared and the locally administered bit set.
fn locally_administered(mut mac: [u8; 6]) -> [u8; 6] {
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The MACs of this node's VXLAN devices: none without VXLAN, the IPv6 one only with
/// the IPv6 device. `before`: the node's record as etcd had it; `kernel`: the devices'
/// MACs now.
pub fn own(cfg: &Config, before: Option<&NodeRecord>, kernel: Macs) -> Macs {
    if cfg.vxlan.mode == IpipMode::Never {
        return Macs::default();
    }
    let v4 = cfg.node.address;
    Macs {
        v4: Some(choose(
            before.map(|r| r.vxlan_mac.map_or_else(|| vtep_mac(v4), |m| m.0)),
            kernel.v4,
            random,
        )),
        v6: cfg
            .vxlan_v6_device()
            .zip(cfg.node.address_v6)
            .map(|(_, v6)| {
                choose(
                    before.map(|r| r.vxlan_mac_v6.map_or_else(|| vtep_mac_v6(v6), |m| m.0)),
                    kernel.v6,
                    random,
                )
            }),
    }
}

/// What the node's record says of `macs`: each MAC that differs from the one derived
/// from the node's address (an absent one stands for that).
pub fn recorded(cfg: &Config, macs: Macs) -> (Option<Mac>, Option<Mac>) {
    let v4 = macs.v4.filter(|m| *m != vtep_mac(cfg.node.address));
    let v6 = macs
        .v6
        .filter(|m| cfg.node.address_v6.map(vtep_mac_v6) != Some(*m));
    (v4.map(Mac), v6.map(Mac))
}

/// The MACs the node's VXLAN devices have in the kernel now (before the installer
/// starts): what a restarting node keeps when its record has none.
pub async fn kernel(cfg: &Config) -> Macs {
    if cfg.vxlan.mode == IpipMode::Never || !cfg.kernel.install {
        return Macs::default();
    }
    let read = |device: String| async move {
        match fib::vxlan_mac(&device).await {
            Ok(mac) => mac,
            Err(e) => {
                tracing::warn!(%device, error = %e, "reading the VXLAN device's MAC failed");
                None
            }
        }
    };
    Macs {
        v4: read(cfg.vxlan.device.clone()).await,
        v6: match cfg.vxlan_v6_device() {
            Some((device, _)) => read(device.to_owned()).await,
            None => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    const DEVICE: [u8; 6] = [0x66, 0x78, 172, 29, 240, 101];
    const FRESH: [u8; 6] = [0x0a, 1, 2, 3, 4, 5];

    #[test]
    fn the_record_beats_the_device_which_beats_a_fresh_mac() {
        assert_eq!(choose(Some(RECORD), Some(DEVICE), || FRESH), RECORD);
        assert_eq!(choose(None, Some(DEVICE), || FRESH), DEVICE);
        assert_eq!(choose(None, None, || FRESH), FRESH);
        // A device without a usable MAC is no choice.
        assert_eq!(choose(None, Some([0; 6]), || FRESH), FRESH);
        assert_eq!(
            choose(None, Some([0x01, 0, 0x5e, 0, 0, 1]), || FRESH),
            FRESH
        );
    }

    #[test]
    fn a_fresh_mac_is_locally_administered_unicast_and_random() {
        let a = random();
        assert_eq!(a[0] & 3, 2, "{a:02x?}");
        assert_ne!(random(), a);
        assert_eq!(locally_administered([0xff; 6])[0], 0xfe);
    }

    fn parse(text: &str) -> Config {
        Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn record(v4: Option<[u8; 6]>) -> NodeRecord {
        NodeRecord {
            name: "a".into(),
            address: "10.0.0.1".parse().expect("address"),
            address_v6: None,
            asn: 64512,
            port: 179,
            rr_cluster_id: None,
            vxlan_mac: v4.map(Mac),
            vxlan_mac_v6: None,
        }
    }

    #[test]
    fn the_node_records_what_it_chose_and_nothing_without_vxlan() {
        let base = "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\n";
        let vxlan = parse(&format!("{base}[vxlan]\nmode = \"always\"\n"));
        let kernel = Macs {
            v4: Some(DEVICE),
            v6: None,
        };
        let own_of = |before: Option<&NodeRecord>| own(&vxlan, before, kernel);
        assert_eq!(own_of(Some(&record(Some(RECORD)))).v4, Some(RECORD));
        // No record (removed): the device's MAC is kept.
        assert_eq!(own_of(None).v4, Some(DEVICE));
        assert_eq!(own_of(None).v6, None, "no IPv6 device");
        // A record without a MAC (an earlier version's) stands for the derived one.
        let derived = vtep_mac("10.0.0.1".parse().expect("address"));
        let fresh = own(&vxlan, Some(&record(None)), Macs::default()).v4;
        assert_eq!(fresh, Some(derived));
        // Nothing at all: a fresh MAC.
        let fresh = own(&vxlan, None, Macs::default()).v4.expect("a MAC");
        assert_eq!(fresh[0] & 3, 2);
        assert_ne!(fresh, derived);
        assert_eq!(own(&parse(base), None, kernel), Macs::default());
        // Recorded: only what differs from the derived MAC.
        let mine = |v4| Macs { v4, v6: None };
        assert_eq!(
            recorded(&vxlan, mine(Some(RECORD))),
            (Some(Mac(RECORD)), None)
        );
        assert_eq!(recorded(&vxlan, mine(Some(derived))), (None, None));
    }
}
