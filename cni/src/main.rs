//! ipipd-cni: the CNI plugin of ipipd (CNI spec 1.1.0; 0.3.1, 0.4.0 and 1.0.0
//! configurations accepted).
//!
//! It keeps no state of its own: addresses come from the ipipd daemon on the node (its
//! control socket), which records them durably and routes the pod; the plugin does the
//! netlink work on both sides of the pod's veth. The one exception: a DEL while the daemon
//! is not answering leaves its release on disk for the daemon (`spool`). See
//! docs/cni.md.
#![forbid(unsafe_code)]

mod check;
mod conf;
mod daemon;
mod del;
mod error;
mod gc;
mod ns;
mod pod;
mod result;
mod spool;

use std::io::Read;
use std::process::ExitCode;

use conf::{Command, Env, NetConf, SUPPORTED};
use error::{CniError, Code};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let version_of = |stdin: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
            .filter(|v| SUPPORTED.contains(&v.as_str()))
            .unwrap_or_else(|| "1.0.0".to_string())
    };
    let version = version_of(&stdin);
    let outcome = match read {
        Ok(_) => run(&stdin),
        Err(e) => Err(CniError::new(Code::Decode, format!("reading stdin: {e}"))),
    };
    match outcome {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{}", e.to_json(&version));
            ExitCode::FAILURE
        }
    }
}

fn run(stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    let env = Env::read(&|name| std::env::var(name).ok())?;
    if env.command == Command::Version {
        let version = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "1.0.0".to_string());
        return Ok(Some(serde_json::json!({
            "cniVersion": version,
            "supportedVersions": SUPPORTED,
        })));
    }
    let conf = NetConf::parse(stdin)?;
    match env.command {
        Command::Add => pod::add(&env, &conf).map(Some),
        Command::Del => del::del(&env, &conf).map(|()| None),
        Command::Check => {
            if !conf.has_check() {
                return Err(CniError::new(
                    Code::IncompatibleVersion,
                    "CHECK needs cniVersion 0.4.0 or later",
                ));
            }
            check::check(&env, &conf).map(|()| None)
        }
        Command::Gc | Command::Status if !conf.has_gc() => Err(CniError::new(
            Code::IncompatibleVersion,
            "GC and STATUS need cniVersion 1.1.0",
        )),
        Command::Gc => gc::gc(&conf).map(|()| None),
        Command::Status => gc::status(&conf).map(|()| None),
        Command::Version => Ok(None),
    }
}
