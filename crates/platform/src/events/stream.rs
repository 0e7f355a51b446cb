//! [`Stream`]: the producers' streams, named in one place for producers and consumers alike.

/// A stream of events, named after the service that produces it.
///
/// Its [`name`](Stream::name) is the wire name: the Redis stream key under `events.prefix`, the
/// `producer` of each envelope and the outbox's producer. Producers, consumers and the
/// revocation follower all take it from here, so the two sides cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// auth's registrations, revoked sessions and changed roles.
    Auth,
    /// product's created, updated and archived products.
    Product,
    /// inventory's depleted stock.
    Inventory,
    /// order's placed and cancelled orders.
    Order,
}

impl Stream {
    /// The stream's wire name (`"auth"`, `"product"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Auth => "auth",
            Stream::Product => "product",
            Stream::Inventory => "inventory",
            Stream::Order => "order",
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Stream;

    #[test]
    fn stream_names_are_the_wire_names_producers_and_consumers_have_always_used() {
        let names: Vec<_> = [
            Stream::Auth,
            Stream::Product,
            Stream::Inventory,
            Stream::Order,
        ]
        .into_iter()
        .map(Stream::name)
        .collect();
        assert_eq!(names, ["auth", "product", "inventory", "order"]);
    }
}
