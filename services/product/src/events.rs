//! What the product service tells the others: `agora.events.v1.ProductCreated`,
//! `ProductUpdated` (the full state after the change) and `ProductArchived`, written to the
//! outbox in the transaction of the change (see [`crate::store`]) under the producer name
//! [`PRODUCER`]. Inventory opens a stock record for every created product. The service consumes
//! no events.

use agora_contracts::agora::{common::v1::Money, events::v1 as ev};

use crate::{domain::Product, wire};
pub use agora_platform::time::timestamp;

/// The producer name of the product service's events: the name of its stream.
pub const PRODUCER: &str = agora_platform::events::Stream::Product.name();

fn price(product: &Product) -> Money {
    wire::money(&product.fields.price)
}

/// The event of a new product.
pub fn created(product: &Product) -> ev::ProductCreated {
    ev::ProductCreated {
        product_id: product.id.clone(),
        sku: product.fields.sku.as_str().to_owned(),
        name: product.fields.name.as_str().to_owned(),
        category: product.fields.category.as_str().to_owned(),
        price: Some(price(product)),
    }
}

/// The event of a changed product: its state after the change.
pub fn updated(product: &Product) -> ev::ProductUpdated {
    ev::ProductUpdated {
        product_id: product.id.clone(),
        sku: product.fields.sku.as_str().to_owned(),
        name: product.fields.name.as_str().to_owned(),
        category: product.fields.category.as_str().to_owned(),
        price: Some(price(product)),
        update_time: Some(timestamp(product.updated_at)),
    }
}

/// The event of an archived product.
pub fn archived(product: &Product) -> ev::ProductArchived {
    ev::ProductArchived {
        product_id: product.id.clone(),
        archive_time: Some(timestamp(product.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_microseconds_into_seconds_and_nanos() {
        let ts = timestamp(1_700_000_000_123_456);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
        let before_epoch = timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_999_000)
        );
    }
}
