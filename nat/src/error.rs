use std::io;

/// What can go wrong programming ipipd's nftables table.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// A socket operation on the netfilter netlink socket failed.
    #[error("nftables netlink socket: {context}")]
    Socket {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request: the whole batch it was part of had no effect.
    #[error("kernel refused to {what}")]
    Kernel {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The kernel answered something that does not parse.
    #[error("undecodable nftables answer: {0}")]
    Decode(&'static str),
    /// The keeper task is gone.
    #[error("the NAT keeper task has stopped")]
    Stopped,
}

impl NatError {
    pub(crate) fn socket(context: &'static str) -> impl FnOnce(io::Error) -> NatError {
        move |source| NatError::Socket { context, source }
    }

    /// The errno of a refused request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NatError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
