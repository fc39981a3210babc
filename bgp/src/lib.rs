//! BGP-4 for ipipd: the wire codec, the session FSM, the RIB with best path and
//! export policy, and the tokio speaker that runs them.
//!
//! Layers, bottom up: [`wire`] (pure codec), [`fsm`] (sans-IO session),
//! [`rib`] (sans-IO routing table), [`speaker`] (tokio tasks and sockets).

pub mod fsm;
pub mod rib;
pub mod speaker;
pub mod wire;
