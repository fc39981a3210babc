use std::io;

/// What can go wrong talking to the kernel FIB.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    /// A socket operation on the netlink socket itself failed.
    #[error("netlink socket: {context}")]
    Socket {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel refused one request (the errno it answered).
    #[error("kernel refused to {what}")]
    Kernel {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The kernel has no IPIP driver, so the tunnel device cannot exist.
    #[error("cannot create {device}: this kernel has no IPIP support (modprobe ipip)")]
    TunnelUnsupported { device: String },
    /// A device the request needs is not there.
    #[error("no such network device: {0}")]
    NoSuchDevice(String),
    /// The kernel sent something that does not parse.
    #[error("undecodable netlink message: {0}")]
    Decode(String),
    /// Answers were lost (socket buffer overrun): the outcome of the request is unknown and
    /// the kernel must be read again.
    #[error("netlink answers lost; outcome unknown")]
    Lost,
    /// The installer task is gone.
    #[error("the FIB installer task has stopped")]
    Stopped,
}

impl FibError {
    /// The errno of a refused request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FibError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn socket(context: &'static str) -> impl FnOnce(io::Error) -> FibError {
        move |source| FibError::Socket { context, source }
    }
}
