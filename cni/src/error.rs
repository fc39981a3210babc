//! CNI errors: the spec's error object on stdout, exit status 1.

use serde::Serialize;

/// Codes from the CNI specification, and ipipd's own (100 and up, listed in docs/cni.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the configuration's cniVersion is not one this plugin speaks.
    IncompatibleVersion,
    /// 4: a CNI_* environment variable is missing or invalid.
    BadEnv,
    /// 6: stdin is not a network configuration (not JSON, wrong shape).
    Decode,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 11: try again later (the daemon is not answering; no free address).
    TryAgain,
    /// 50: STATUS: the plugin cannot serve ADD now (the daemon is not answering, or has no
    /// address to give).
    Unavailable,
    /// 100: the kernel refused to wire the pod.
    Kernel,
    /// 101: the pod's interface name is taken inside its network namespace.
    InterfaceTaken,
    /// 102: the daemon refused the request.
    Refused,
    /// 103: CHECK found the pod different from what it should be.
    CheckFailed,
}

impl Code {
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::BadEnv => 4,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgain => 11,
            Code::Unavailable => 50,
            Code::Kernel => 100,
            Code::InterfaceTaken => 101,
            Code::Refused => 102,
            Code::CheckFailed => 103,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: Option<String>,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// Adds to the details (after those there already are).
    pub fn details(mut self, details: impl Into<String>) -> CniError {
        let details = details.into();
        self.details = Some(match self.details.take() {
            Some(before) => format!("{before}; {details}"),
            None => details,
        });
        self
    }

    /// The error object, in the configuration's version (or 1.0.0 when unknown).
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a str>,
        }
        serde_json::to_value(Out {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: self.details.as_deref(),
        })
        .unwrap_or_default()
    }
}

impl From<fib::FibError> for CniError {
    fn from(e: fib::FibError) -> CniError {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        CniError::new(Code::Kernel, text)
    }
}
