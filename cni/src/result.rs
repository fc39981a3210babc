//! The CNI success result, typed per version (CNI spec, "Success"): 0.3.x and 0.4.0 give
//! each address a `version` ("4" or "6"); 1.0.0 dropped it, and 1.1.0 kept 1.0.0's shape.
//!
//! Keys this plugin does not know (a newer spec's, or another plugin's in a chain) are
//! kept as they came: a chained plugin must pass on what it was given.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CniError, Code};

type Extra = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace of a container-side interface; none for a host interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An address of a 0.3.x or 0.4.0 result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpV0 {
    pub version: String,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An address of a 1.0.0 or 1.1.0 result: no `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpV1 {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What both address shapes offer.
pub trait IpConfig: Serialize + DeserializeOwned + Clone {
    fn new(address: IpNet, interface: usize) -> Self;
    fn address(&self) -> IpNet;
    fn interface(&self) -> Option<usize>;
}

impl IpConfig for IpV0 {
    fn new(address: IpNet, interface: usize) -> IpV0 {
        IpV0 {
            version: if address.addr().is_ipv4() { "4" } else { "6" }.into(),
            address,
            gateway: None,
            interface: Some(interface),
            extra: Extra::new(),
        }
    }
    fn address(&self) -> IpNet {
        self.address
    }
    fn interface(&self) -> Option<usize> {
        self.interface
    }
}

impl IpConfig for IpV1 {
    fn new(address: IpNet, interface: usize) -> IpV1 {
        IpV1 {
            address,
            gateway: None,
            interface: Some(interface),
            extra: Extra::new(),
        }
    }
    fn address(&self) -> IpNet {
        self.address
    }
    fn interface(&self) -> Option<usize> {
        self.interface
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "Ip: Deserialize<'de>"))]
pub struct Success<Ip> {
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<Ip>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What this plugin adds to a result: the veth's two ends (host first) and the pod's
/// addresses, on the second.
#[derive(Debug, Clone)]
pub struct Ours {
    pub host: Interface,
    pub pod: Interface,
    pub addresses: Vec<IpAddr>,
    pub routes: Vec<Route>,
}

impl<Ip: IpConfig> Success<Ip> {
    fn empty(cni_version: &str) -> Success<Ip> {
        Success {
            cni_version: cni_version.into(),
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
            extra: Extra::new(),
        }
    }

    /// `prev` (a chain's result so far) with ours appended: the spec asks a chained
    /// plugin to pass the previous result on, with its own changes.
    fn add(mut self, ours: &Ours) -> Success<Ip> {
        let pod_index = self.interfaces.len() + 1;
        self.interfaces.push(ours.host.clone());
        self.interfaces.push(ours.pod.clone());
        self.ips.extend(
            ours.addresses
                .iter()
                .map(|ip| Ip::new(IpNet::from(*ip), pod_index)),
        );
        self.routes.extend(ours.routes.iter().cloned());
        self
    }

    /// The addresses given to the interface at `index`.
    fn addresses_of(&self, index: usize) -> Vec<IpNet> {
        self.ips
            .iter()
            .filter(|ip| ip.interface() == Some(index))
            .map(IpConfig::address)
            .collect()
    }
}

/// A result in the shape of its version.
#[derive(Debug, Clone, PartialEq)]
pub enum CniResult {
    V0(Success<IpV0>),
    V1(Success<IpV1>),
}

/// 0.3.x and 0.4.0 results carry `ips[].version`.
fn legacy(cni_version: &str) -> bool {
    cni_version.starts_with("0.")
}

impl CniResult {
    /// A result of `cni_version` holding nothing yet.
    pub fn empty(cni_version: &str) -> CniResult {
        if legacy(cni_version) {
            CniResult::V0(Success::empty(cni_version))
        } else {
            CniResult::V1(Success::empty(cni_version))
        }
    }

    /// A `prevResult`, which the runtime hands over in the configuration's version.
    pub fn parse(cni_version: &str, value: &Value) -> Result<CniResult, CniError> {
        let bad = |e: serde_json::Error| {
            CniError::new(
                Code::Decode,
                format!("prevResult is not a CNI {cni_version} result"),
            )
            .details(e.to_string())
        };
        let mut r = if legacy(cni_version) {
            CniResult::V0(serde_json::from_value(value.clone()).map_err(bad)?)
        } else {
            CniResult::V1(serde_json::from_value(value.clone()).map_err(bad)?)
        };
        // The runtime converted it to our version; say so whatever it wrote.
        match &mut r {
            CniResult::V0(s) => s.cni_version = cni_version.into(),
            CniResult::V1(s) => s.cni_version = cni_version.into(),
        }
        Ok(r)
    }

    pub fn add(self, ours: &Ours) -> CniResult {
        match self {
            CniResult::V0(s) => CniResult::V0(s.add(ours)),
            CniResult::V1(s) => CniResult::V1(s.add(ours)),
        }
    }

    pub fn interfaces(&self) -> &[Interface] {
        match self {
            CniResult::V0(s) => &s.interfaces,
            CniResult::V1(s) => &s.interfaces,
        }
    }

    pub fn addresses_of(&self, index: usize) -> Vec<IpNet> {
        match self {
            CniResult::V0(s) => s.addresses_of(index),
            CniResult::V1(s) => s.addresses_of(index),
        }
    }

    pub fn to_json(&self) -> Value {
        let v = match self {
            CniResult::V0(s) => serde_json::to_value(s),
            CniResult::V1(s) => serde_json::to_value(s),
        };
        // Plain data with string keys: serializing it cannot fail.
        v.unwrap_or_default()
    }
}

/// A host-side or pod-side interface of ours.
pub fn interface(name: &str, mac: &str, sandbox: Option<String>) -> Interface {
    Interface {
        name: name.into(),
        mac: Some(mac.into()),
        sandbox,
        extra: Extra::new(),
    }
}

/// A route of ours: `dst` through the interface's gateway.
pub fn route(dst: IpNet) -> Route {
    Route {
        dst,
        gw: None,
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ours {
        Ours {
            host: interface("calia", "ee:ee:ee:ee:ee:ee", None),
            pod: interface("eth0", "02:00:00:00:00:01", Some("/run/netns/p".into())),
            addresses: vec![
                IpAddr::from([10, 0, 0, 1]),
                "fd00::1".parse().unwrap_or(IpAddr::from([0u8; 16])),
            ],
            routes: vec![route(IpNet::V4(Default::default()))],
        }
    }

    #[test]
    fn addresses_carry_a_version_before_1_0_only() {
        for (v, with_version) in [
            ("0.3.1", true),
            ("0.4.0", true),
            ("1.0.0", false),
            ("1.1.0", false),
        ] {
            let r = CniResult::empty(v).add(&ours()).to_json();
            assert_eq!(r["cniVersion"], v);
            assert_eq!(r["ips"][0]["address"], "10.0.0.1/32");
            assert_eq!(r["ips"][0]["interface"], 1);
            assert_eq!(r["ips"][1]["address"], "fd00::1/128");
            assert_eq!(
                r["ips"][0].get("version").is_some(),
                with_version,
                "{v}: {r}"
            );
            if with_version {
                assert_eq!(r["ips"][0]["version"], "4");
                assert_eq!(r["ips"][1]["version"], "6");
            }
            assert_eq!(r["routes"], serde_json::json!([{"dst": "0.0.0.0/0"}]));
            assert_eq!(r["dns"], serde_json::json!({}));
            assert_eq!(
                r["interfaces"][0],
                serde_json::json!({"name": "calia", "mac": "ee:ee:ee:ee:ee:ee"})
            );
            assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/p");
        }
    }

    #[test]
    fn a_previous_result_is_kept_and_ours_appended() {
        let prev = serde_json::json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "dummy0", "sandbox": "/run/netns/p", "mtu": 9000}],
            "ips": [{"address": "192.0.2.5/24", "gateway": "192.0.2.1", "interface": 0}],
            "routes": [{"dst": "192.0.2.0/24", "gw": "192.0.2.1", "priority": 5}],
            "dns": {"nameservers": ["192.0.2.53"], "search": ["example.org"]},
            "frob": {"deep": true},
        });
        let r = CniResult::parse("1.1.0", &prev).map_err(|e| e.msg);
        let r = r.map(|r| r.add(&ours()).to_json());
        let Ok(r) = r else { panic!("{r:?}") };
        assert_eq!(r["interfaces"][0], prev["interfaces"][0]);
        assert_eq!(r["interfaces"][1]["name"], "calia");
        assert_eq!(r["interfaces"][2]["name"], "eth0");
        assert_eq!(r["ips"][0], prev["ips"][0]);
        assert_eq!(r["ips"][1]["address"], "10.0.0.1/32");
        assert_eq!(
            r["ips"][1]["interface"], 2,
            "indexes follow the previous interfaces"
        );
        assert_eq!(r["routes"][0], prev["routes"][0]);
        assert_eq!(r["routes"][1]["dst"], "0.0.0.0/0");
        assert_eq!(r["dns"], prev["dns"]);
        assert_eq!(r["frob"], prev["frob"]);
        let back = CniResult::parse("1.1.0", &r).map(|p| p.addresses_of(2));
        assert_eq!(
            back.ok().map(|a| a.len()),
            Some(2),
            "the merged result reads back"
        );
    }

    #[test]
    fn a_previous_result_of_the_wrong_shape_is_an_error() {
        let prev = serde_json::json!({"cniVersion": "0.4.0", "ips": [{"address": "192.0.2.5/24"}]});
        assert_eq!(
            CniResult::parse("0.4.0", &prev).err().map(|e| e.code),
            Some(Code::Decode),
            "0.4.0 addresses need a version"
        );
        assert!(CniResult::parse("1.0.0", &prev).is_ok());
    }
}
