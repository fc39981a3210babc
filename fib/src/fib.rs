//! The seam between the reconciler and a kernel: everything the installer needs from a FIB.

use std::future::Future;
use std::net::Ipv4Addr;

use ipnet::IpNet;

use crate::vtep::{VtepOp, VtepTable};
use crate::{FibError, Route, RouteKind};

/// One change to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create the route, or replace whatever route of the same prefix is there.
    Write(Route),
    /// Delete our route for this prefix (absent already is fine).
    Delete(IpNet),
}

impl Op {
    pub fn prefix(&self) -> IpNet {
        match self {
            Op::Write(r) => r.prefix,
            Op::Delete(p) => *p,
        }
    }
}

/// A network device as far as routes care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// Administratively up (`IFF_UP`): the kernel refuses routes through a device that is not.
    pub up: bool,
    pub mtu: u32,
}

/// The interface holding the node address, and its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub subnet: IpNet,
    pub device: String,
    pub mtu: u32,
}

/// The tunnel device as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    /// `None`: leave the MTU alone (nothing to derive it from).
    pub mtu: Option<u32>,
    /// The one /32 the device should carry; `None`: leave addresses alone.
    pub address: Option<Ipv4Addr>,
    /// `Some`: a VXLAN device with these parameters; `None`: an IPIP one.
    pub vxlan: Option<VxlanDevice>,
}

/// What a VXLAN device is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanDevice {
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// The node's own address (IPv4, or IPv6 for the IPv6 device): the outer source.
    pub local: std::net::IpAddr,
    /// The device's MAC (this node's VTEP MAC).
    pub mac: [u8; 6],
}

/// Something that changed in the kernel without us asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibEvent {
    /// A route of ours (our protocol, our table) is now there, in this shape (`None`: a
    /// shape ipipd never writes).
    RouteSet {
        prefix: IpNet,
        kind: Option<RouteKind>,
    },
    /// A route of ours was deleted.
    RouteGone { prefix: IpNet },
    /// A route of another protocol replaced whatever was at this prefix, ours included.
    RouteTaken { prefix: IpNet },
    /// A device appeared or changed.
    LinkSet(Link),
    /// A device disappeared (the kernel drops its IPv4 routes without telling anyone).
    LinkGone { name: String },
    /// A neighbour or FDB entry on this device changed or went.
    NeighChanged { device: String },
    /// Notifications were lost: read everything again.
    Lost,
}

/// A FIB the reconciler can drive: the kernel through netlink, or memory in tests.
///
/// Every method returns a `Send` future so the installer can run on any tokio runtime.
pub trait Fib: Send {
    /// Our routes (our protocol, our table) as they are now, handed to `each` one at a time
    /// as the dump is read (a full table is never held twice); `None` kind for shapes
    /// ipipd never writes.
    fn routes(
        &mut self,
        each: &mut (dyn FnMut(IpNet, Option<RouteKind>) + Send),
    ) -> impl Future<Output = Result<(), FibError>> + Send;

    /// Every network device.
    fn links(&mut self) -> impl Future<Output = Result<Vec<Link>, FibError>> + Send;

    /// The interface holding `node`, if any.
    fn underlay(
        &mut self,
        node: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<Underlay>, FibError>> + Send;

    /// Apply the ops in order, as fast as the FIB allows; one result per op. Deleting an
    /// absent route and adding one that exists are successes.
    fn apply(&mut self, ops: &[Op]) -> impl Future<Output = Vec<Result<(), FibError>>> + Send;

    /// The next change made by someone else. Must be cancel safe: the installer polls it in
    /// a `select!` beside other work.
    fn next_event(&mut self) -> impl Future<Output = FibEvent> + Send;

    /// Make the tunnel device exist, be up, and carry the MTU and address asked for.
    fn ensure_tunnel(
        &mut self,
        spec: &TunnelSpec,
    ) -> impl Future<Output = Result<(), FibError>> + Send;

    /// The neighbour (IPv4 and IPv6) and FDB entries of a device.
    fn vteps(&mut self, device: &str) -> impl Future<Output = Result<VtepTable, FibError>> + Send;

    /// Apply neighbour and FDB writes on a device, in order; one result per op. Deleting
    /// an absent entry is a success.
    fn apply_vteps(
        &mut self,
        device: &str,
        ops: &[VtepOp],
    ) -> impl Future<Output = Vec<Result<(), FibError>>> + Send;
}
