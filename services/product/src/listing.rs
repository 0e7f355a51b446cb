//! What a ListProducts asks for: filters, order, page size, and the keyset page token that says
//! where the previous page ended.
//!
//! A page token (the platform's format, [`agora_platform::paging`]) carries the sort key and id
//! of the last product returned (never an offset, so paging stays stable while products are
//! added) and is bound to the filters and order it was issued for, so a token replayed with
//! other filters is refused instead of silently skipping or repeating products.

use agora_contracts::agora::product::v1 as pb;
use agora_platform::{
    error::FieldViolations,
    paging::{self, PageTokenError},
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{Currency, Product, parse_id},
    error::ServiceError,
};

/// The longest text query, in characters.
pub const MAX_QUERY: usize = 200;

/// The order of a listing; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By creation time, newest first.
    Newest,
    /// By price amount, cheapest first.
    PriceAsc,
    /// By price amount, most expensive first.
    PriceDesc,
    /// By lower-cased name, A to Z.
    Name,
}

impl Order {
    /// A listing order from the wire; UNSPECIFIED is newest first, unknown values are `None`.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::ProductOrder::try_from(value).ok()? {
            pb::ProductOrder::Unspecified | pb::ProductOrder::Newest => Some(Order::Newest),
            pb::ProductOrder::PriceAsc => Some(Order::PriceAsc),
            pb::ProductOrder::PriceDesc => Some(Order::PriceDesc),
            pb::ProductOrder::Name => Some(Order::Name),
        }
    }

    /// Whether the order runs from high to low.
    pub fn descending(self) -> bool {
        matches!(self, Order::Newest | Order::PriceDesc)
    }

    /// Where `product` stands in this order.
    pub fn position(self, product: &Product) -> Position {
        let key = match self {
            Order::Newest => SortKey::Int(product.created_at),
            Order::PriceAsc | Order::PriceDesc => SortKey::Int(product.fields.price.amount_minor),
            Order::Name => SortKey::Text(product.fields.name_key()),
        };
        Position {
            key,
            id: product.id.clone(),
        }
    }
}

/// Which products a listing includes; every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this category.
    pub category: Option<String>,
    /// Only prices in this currency.
    pub currency: Option<Currency>,
    /// Only prices of at least this amount.
    pub min_price: Option<i64>,
    /// Only prices of at most this amount.
    pub max_price: Option<i64>,
    /// Lower-cased words that must each occur in the name or the description.
    pub words: Vec<String>,
    /// Archived products too.
    pub include_archived: bool,
}

/// A sort key value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    /// Creation time or price amount.
    Int(i64),
    /// Lower-cased name.
    Text(String),
}

/// A place in a listing: the sort key and id of a product (what a page token carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The product's sort key in the listing's order.
    pub key: SortKey,
    /// The product's id, which breaks ties.
    pub id: String,
}

/// A parsed ListProducts request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Products to return, 1 to [`paging::MAX_PAGE_SIZE`].
    pub page_size: usize,
    /// Which products.
    pub filter: Filter,
    /// In which order.
    pub order: Order,
    /// Start after this product; `None` for the first page.
    pub after: Option<Position>,
}

impl TryFrom<pb::ListProductsRequest> for Listing {
    type Error = ServiceError;

    /// Parses a request, reporting every violation at once. `include_archived` is parsed, not
    /// judged: whether the caller may ask for it is [`Listing::check_access`]'s decision.
    fn try_from(request: pb::ListProductsRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let page_size = violations.take("page_size", paging::page_size(request.page_size));
        let order = Order::from_proto(request.order_by);
        if order.is_none() {
            violations.add("order_by", "must be a known ProductOrder");
        }
        let filter = parse_filter(&request, &mut violations);
        let (Some(page_size), Some(order), Some(filter)) = (page_size, order, filter) else {
            return Err(violations.into());
        };
        // A token is checked only against filters and an order that are themselves valid.
        match decode_token(&request.page_token, &filter, order) {
            Ok(after) if violations.is_empty() => Ok(Self {
                page_size,
                filter,
                order,
                after,
            }),
            Ok(_) => Err(violations.into()),
            Err(problem) => {
                violations.add("page_token", problem);
                Err(violations.into())
            }
        }
    }
}

impl Listing {
    /// Whether a caller may run this listing: archived products are for administrators only.
    ///
    /// # Errors
    /// Archived products asked for by someone who is not an administrator.
    pub fn check_access(&self, is_admin: bool) -> Result<(), ServiceError> {
        if self.filter.include_archived && !is_admin {
            return Err(ServiceError::ArchivedListingForbidden);
        }
        Ok(())
    }

    /// The page among `products` (what the store returned: up to one more than the page size)
    /// and the token of the next page, empty when this page is the last.
    pub fn page(&self, mut products: Vec<Product>) -> (Vec<Product>, String) {
        if products.len() <= self.page_size {
            return (products, String::new());
        }
        products.truncate(self.page_size);
        let next_page_token = products
            .last()
            .map(|last| self.token_after(last))
            .unwrap_or_default();
        (products, next_page_token)
    }

    /// The token of the page that follows `last`.
    pub fn token_after(&self, last: &Product) -> String {
        paging::encode_token(
            &self.order.position(last),
            &binding(&self.filter, self.order),
        )
    }
}

fn parse_filter(
    request: &pb::ListProductsRequest,
    violations: &mut FieldViolations,
) -> Option<Filter> {
    let mut valid = true;
    let currency = if request.currency_code.is_empty() {
        None
    } else {
        let parsed = violations.take("currency_code", Currency::parse(&request.currency_code));
        valid &= parsed.is_some();
        parsed
    };
    for (field, bound) in [
        ("min_price_minor", request.min_price_minor),
        ("max_price_minor", request.max_price_minor),
    ] {
        if bound.is_some() && request.currency_code.is_empty() {
            violations.add(field, "requires currency_code");
            valid = false;
        }
    }
    if let (Some(min), Some(max)) = (request.min_price_minor, request.max_price_minor)
        && min > max
    {
        violations.add(
            "min_price_minor",
            "must not be greater than max_price_minor",
        );
        valid = false;
    }
    if request.query.chars().count() > MAX_QUERY {
        violations.add("query", format!("must be at most {MAX_QUERY} characters"));
        valid = false;
    }
    let words = request
        .query
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    valid.then(|| Filter {
        category: (!request.category.is_empty()).then(|| request.category.clone()),
        currency,
        min_price: request.min_price_minor,
        max_price: request.max_price_minor,
        words,
        include_archived: request.include_archived,
    })
}

/// The position a page token carries, if any, checked against the listing's filters and
/// order: its key must be of the order's kind and its id a product id.
fn decode_token(
    raw: &str,
    filter: &Filter,
    order: Order,
) -> Result<Option<Position>, &'static str> {
    const MALFORMED: &str = "is malformed: pass back a next_page_token unchanged";
    let position: Option<Position> =
        paging::decode_token(raw, &binding(filter, order)).map_err(|error| match error {
            PageTokenError::Malformed => MALFORMED,
            PageTokenError::OtherFilter => "was issued for other filters or another order",
        })?;
    let Some(Position { key, id }) = position else {
        return Ok(None);
    };
    match (order, &key) {
        (Order::Name, SortKey::Text(_))
        | (Order::Newest | Order::PriceAsc | Order::PriceDesc, SortKey::Int(_)) => {}
        _ => return Err(MALFORMED),
    }
    let id = parse_id(&id).map_err(|_| MALFORMED)?;
    Ok(Some(Position { key, id }))
}

/// What binds a token to its listing: the order and every filter, in a fixed shape.
type Binding<'a> = (
    &'static str,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    &'a [String],
    bool,
);

fn binding(filter: &Filter, order: Order) -> Binding<'_> {
    let order_tag = match order {
        Order::Newest => "newest",
        Order::PriceAsc => "price-asc",
        Order::PriceDesc => "price-desc",
        Order::Name => "name",
    };
    (
        order_tag,
        filter.category.as_deref(),
        filter.currency.as_ref().map(Currency::as_str),
        filter.min_price,
        filter.max_price,
        &filter.words,
        filter.include_archived,
    )
}

#[cfg(test)]
mod tests;
