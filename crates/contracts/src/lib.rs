//! Agora's contracts: the Rust code generated from every `.proto` under `proto/`, and the encoded
//! descriptor set those files compile to.
//!
//! # Layout
//! - [`agora`]: one module per versioned package (`agora::auth::v1`, `agora::order::v1`, ...), each
//!   with its messages, a tonic client and a tonic server trait.
//! - [`google::api`]: the vendored HTTP annotation types the edge gateway reads.
//! - [`FILE_DESCRIPTOR_SET`]: every contract with its imports, for server reflection, the access
//!   options and the gateway's routes.

/// The encoded `google.protobuf.FileDescriptorSet` of every contract, imports included.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/agora_descriptor.bin"));

/// Generated code is documented by the proto comments it is made from; lints do not apply to it.
macro_rules! generated {
    ($($name:ident => $package:literal),* $(,)?) => {
        $(
            #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, clippy::unwrap_used)]
            #[doc = concat!("The `", $package, "` package.")]
            pub mod $name {
                tonic::include_proto!($package);
            }
        )*
    };
}

/// Declares each of Agora's packages as `<name>::v1`, with the doc given.
macro_rules! versioned {
    ($($(#[$doc:meta])* $name:ident => $package:literal),* $(,)?) => {
        $(
            $(#[$doc])*
            pub mod $name {
                generated!(v1 => $package);
            }
        )*
    };
}

/// Agora's own packages.
pub mod agora {
    versioned! {
        /// `agora.options.v1`: the access option every method declares.
        options => "agora.options.v1",
        /// `agora.common.v1`: types shared by several contracts.
        common => "agora.common.v1",
        /// `agora.auth.v1`: accounts, sessions, tokens and keys.
        auth => "agora.auth.v1",
        /// `agora.user.v1`: profiles.
        user => "agora.user.v1",
        /// `agora.product.v1`: the catalog.
        product => "agora.product.v1",
        /// `agora.inventory.v1`: stock, reservations and the ledger.
        inventory => "agora.inventory.v1",
        /// `agora.order.v1`: orders and their saga.
        order => "agora.order.v1",
        /// `agora.events.v1`: the events services publish on the bus.
        events => "agora.events.v1",
    }
}

/// Google's packages that the contracts import and prost does not ship.
pub mod google {
    generated!(api => "google.api");
}
