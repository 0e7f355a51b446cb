//! The shape of a service: what it is ([`ServiceKind`]).
//!
//! # Layout
//! - `kind`: [`ServiceKind`], the five services with their names and default ports.

mod kind;

pub use kind::ServiceKind;
