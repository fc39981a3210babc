//! The ipipd daemon on the node, over its control socket: the plugin's only source of
//! addresses.

use api::protocol::{IpamErrorKind, Request, Response};

use crate::conf::NetConf;
use crate::error::{CniError, Code};

pub fn call(conf: &NetConf, request: &Request) -> Result<Response, CniError> {
    let socket = conf.socket();
    match api::call(&socket, request) {
        Ok(Response::Error { message }) => Err(CniError::new(Code::Refused, message)),
        Ok(r) => Ok(r),
        Err(e) => Err(CniError::new(
            Code::TryAgain,
            format!("ipipd is not answering: {e}"),
        )),
    }
}

/// The daemon is not there (no socket, nobody listening, gone before answering): what
/// DEL may spool, as opposed to an answer it cannot use.
pub fn not_answering(e: &api::ClientError) -> bool {
    matches!(
        e,
        api::ClientError::NoDaemon { .. } | api::ClientError::NoAnswer { .. }
    )
}

pub fn ipam_error(kind: IpamErrorKind, message: String) -> CniError {
    let code = match kind {
        IpamErrorKind::Exhausted | IpamErrorKind::Storage => Code::TryAgain,
        IpamErrorKind::Invalid => Code::Refused,
        IpamErrorKind::Unknown => Code::CheckFailed,
    };
    CniError::new(code, message)
}

pub fn unexpected(r: Response) -> CniError {
    CniError::new(
        Code::Refused,
        format!("unexpected answer from ipipd: {r:?}"),
    )
}
