//! What the runtime hands the plugin: CNI_* variables and the network configuration on
//! stdin (CNI spec 1.0.0, sections "Parameters" and "Network configuration").

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{CniError, Code};

/// The versions whose configurations this plugin accepts.
pub const SUPPORTED: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const DEFAULT_SOCKET: &str = "/run/ipipd/ipipd.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// CNI 1.1: release what no valid attachment holds.
    Gc,
    /// CNI 1.1: can the plugin serve ADD now?
    Status,
}

/// The CNI_* variables.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS, when both are there.
    pub pod: Option<(String, String)>,
    /// `IP` from CNI_ARGS (comma-separated): the older way of asking for an address,
    /// which podman 4 uses for `--ip` beside the `ips` capability.
    pub requested: Vec<String>,
}

fn var(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.is_empty())
}

impl Env {
    /// Reads the variables through `get` (the process environment, or a map in tests).
    pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let command = match var(get, "CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("GC") => Command::Gc,
            Some("STATUS") => Command::Status,
            Some(other) => {
                return Err(CniError::new(
                    Code::BadEnv,
                    format!("unknown CNI_COMMAND {other:?} (ADD, DEL, CHECK, VERSION, GC, STATUS)"),
                ))
            }
            None => return Err(CniError::new(Code::BadEnv, "CNI_COMMAND is not set")),
        };
        let required = |name: &str| {
            var(get, name).ok_or_else(|| CniError::new(Code::BadEnv, format!("{name} is not set")))
        };
        // These name no container.
        if matches!(command, Command::Version | Command::Gc | Command::Status) {
            return Ok(Env {
                command,
                container_id: String::new(),
                netns: None,
                ifname: String::new(),
                pod: None,
                requested: Vec::new(),
            });
        }
        let container_id = required("CNI_CONTAINERID")?;
        if !container_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || container_id.len() > 256
        {
            return Err(CniError::new(
                Code::BadEnv,
                format!("CNI_CONTAINERID {container_id:?}: letters, digits, '_', '.' and '-' only, at most 256"),
            ));
        }
        let ifname = required("CNI_IFNAME")?;
        if ifname.len() > 15
            || ifname == "."
            || ifname == ".."
            || ifname
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(CniError::new(
                Code::BadEnv,
                format!("CNI_IFNAME {ifname:?}: 1 to 15 bytes, no '/', ':' or spaces"),
            ));
        }
        // DEL may come without a namespace (it is gone); ADD and CHECK need one.
        let netns = var(get, "CNI_NETNS").map(PathBuf::from);
        if netns.is_none() && command != Command::Del {
            return Err(CniError::new(Code::BadEnv, "CNI_NETNS is not set"));
        }
        let args = cni_args(var(get, "CNI_ARGS").as_deref().unwrap_or(""))?;
        let pod = args
            .get("K8S_POD_NAMESPACE")
            .zip(args.get("K8S_POD_NAME"))
            .map(|(ns, name)| (ns.clone(), name.clone()));
        let requested = args
            .get("IP")
            .map(|ips| {
                ips.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            pod,
            requested,
        })
    }
}

/// CNI_ARGS: `KEY=VALUE;KEY=VALUE`.
fn cni_args(text: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            CniError::new(Code::BadEnv, format!("CNI_ARGS: {pair:?} is not KEY=VALUE"))
        })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The network configuration: the keys this plugin reads. Unknown keys are ignored, as
/// the spec asks (runtimes add `runtimeConfig`, `args`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
    /// GC: the attachments of this network that are still in use.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// Capability arguments the runtime passes (only those the plugin entry declares).
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
}

/// `runtimeConfig`: the capabilities install-cni declares.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// The `ips` capability: addresses the runtime asks for (`podman run --ip`), as
    /// `address` or `address/prefix`.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// Parses stdin. A version outside [`SUPPORTED`] is code 1, not JSON or the wrong shape
    /// code 6, a value out of range code 7.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                Code::Decode,
                "the network configuration on stdin is not JSON",
            )
            .details(e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                Code::Decode,
                "the network configuration on stdin is not one this plugin reads",
            )
            .details(e.to_string())
        })?;
        if !SUPPORTED.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "cniVersion {:?} is not supported (supported: {})",
                    conf.cni_version,
                    SUPPORTED.join(", ")
                ),
            ));
        }
        if conf.name.is_empty() {
            return Err(CniError::new(
                Code::InvalidConfig,
                "the network configuration has no name",
            ));
        }
        if let Some(mtu) = conf.mtu {
            if !(576..=65535).contains(&mtu) {
                return Err(CniError::new(
                    Code::InvalidConfig,
                    format!("mtu {mtu} is out of range (576 to 65535)"),
                ));
            }
        }
        Ok(conf)
    }

    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// CHECK exists from 0.4.0 on.
    pub fn has_check(&self) -> bool {
        self.cni_version != "0.3.1"
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn has_gc(&self) -> bool {
        self.cni_version == "1.1.0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, CniError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::read(&|k| map.get(k).cloned())
    }

    #[test]
    fn variables() {
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.1.0.9,fd00::9",
            ),
        ]);
        let ok = ok.map_err(|e| e.msg);
        assert_eq!(
            ok.as_ref().map(|e| e.pod.clone()),
            Ok(Some(("default".to_string(), "web-0".to_string())))
        );
        assert_eq!(
            ok.as_ref().map(|e| e.requested.clone()),
            Ok(vec!["10.1.0.9".to_string(), "fd00::9".to_string()])
        );
        for (bad, code) in [
            (vec![], Code::BadEnv),
            (vec![("CNI_COMMAND", "FROB")], Code::BadEnv),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_NETNS", "/x"),
                ],
                Code::BadEnv,
            ),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "a b"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_NETNS", "/x"),
                ],
                Code::BadEnv,
            ),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "a"),
                    ("CNI_IFNAME", "much-too-long-name"),
                    ("CNI_NETNS", "/x"),
                ],
                Code::BadEnv,
            ),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "a"),
                    ("CNI_IFNAME", "eth0"),
                ],
                Code::BadEnv,
            ),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "a"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_NETNS", "/x"),
                    ("CNI_ARGS", "junk"),
                ],
                Code::BadEnv,
            ),
        ] {
            assert_eq!(env(&bad).err().map(|e| e.code), Some(code), "{bad:?}");
        }
        // DEL needs no namespace.
        assert!(env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "a"),
            ("CNI_IFNAME", "eth0")
        ])
        .is_ok());
    }

    #[test]
    fn configurations() {
        let ok = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"n","type":"ipipd-cni","frob":1,"socket":"/s"}"#,
        );
        assert_eq!(ok.map(|c| c.socket()).ok(), Some(PathBuf::from("/s")));
        let code = |text: &str| NetConf::parse(text.as_bytes()).err().map(|e| e.code);
        assert_eq!(code("{"), Some(Code::Decode));
        assert_eq!(code(r#"{"name":"n","type":"t"}"#), Some(Code::Decode));
        assert_eq!(
            code(r#"{"cniVersion":"0.2.0","name":"n","type":"t"}"#),
            Some(Code::IncompatibleVersion)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":10}"#),
            Some(Code::InvalidConfig)
        );
    }

    #[test]
    fn capability_arguments_and_gc_attachments() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"t",
                "runtimeConfig":{"ips":["10.0.0.9/32"],"portMappings":[]},
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        );
        let c = c.map_err(|e| e.msg);
        assert_eq!(
            c.as_ref().map(|c| c.runtime_config.ips.clone()),
            Ok(vec!["10.0.0.9/32".to_string()])
        );
        assert_eq!(
            c.as_ref().map(|c| c
                .valid_attachments
                .as_ref()
                .map(|v| v[0].container_id.clone())),
            Ok(Some("c1".to_string()))
        );
        let plain = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"t"}"#);
        let plain = plain.map_err(|e| e.msg);
        assert_eq!(
            plain.as_ref().map(|c| c.runtime_config.ips.is_empty()),
            Ok(true)
        );
        assert!(plain.is_ok_and(|c| c.valid_attachments.is_none()));
    }
}
