//! What a ListProducts asks for: filters, order, page size, and the keyset page token that says
//! where the previous page ended.
//!
//! A page token carries the sort key and id of the last product returned (never an offset, so
//! paging stays stable while products are added) and a fingerprint of the filters and order it
//! was issued for, so a token replayed with other filters is refused instead of silently
//! skipping or repeating products. Tokens need no signature: a forged one can only move the
//! start of a listing the caller may read anyway.

use agora_contracts::agora::product::v1 as pb;
use agora_platform::error::FieldViolations;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use prost::Message as _;

use crate::domain::{Currency, Product, parse_id};

/// Products per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The most products per page; larger requests are capped.
pub const MAX_PAGE_SIZE: i64 = 100;
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
    fn from_proto(value: i32) -> Option<Self> {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// Creation time or price amount.
    Int(i64),
    /// Lower-cased name.
    Text(String),
}

/// A place in a listing: the sort key and id of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The product's sort key in the listing's order.
    pub key: SortKey,
    /// The product's id, which breaks ties.
    pub id: String,
}

/// A parsed ListProducts request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Products to return, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: i64,
    /// Which products.
    pub filter: Filter,
    /// In which order.
    pub order: Order,
    /// Start after this product; `None` for the first page.
    pub after: Option<Position>,
}

/// The page token as encoded (protobuf, then URL-safe base64).
#[derive(Clone, PartialEq, prost::Message)]
struct PageToken {
    #[prost(uint32, tag = "1")]
    version: u32,
    /// [`fingerprint`] of the filters and order the token was issued for.
    #[prost(fixed64, tag = "2")]
    binding: u64,
    #[prost(int64, optional, tag = "3")]
    int_key: Option<i64>,
    #[prost(string, optional, tag = "4")]
    text_key: Option<String>,
    #[prost(string, tag = "5")]
    id: String,
}

const TOKEN_VERSION: u32 = 1;

impl Listing {
    /// Parses a request, recording every violation. `include_archived` is parsed, not judged:
    /// whether the caller may ask for it is the handler's decision.
    pub fn parse(
        request: &pb::ListProductsRequest,
        violations: &mut FieldViolations,
    ) -> Option<Self> {
        let page_size = match request.page_size {
            size if size < 0 => {
                violations.add("page_size", "must not be negative");
                None
            }
            0 => Some(DEFAULT_PAGE_SIZE),
            size => Some(i64::from(size).min(MAX_PAGE_SIZE)),
        };
        let order = Order::from_proto(request.order_by);
        if order.is_none() {
            violations.add("order_by", "must be a known ProductOrder");
        }
        let filter = parse_filter(request, violations);
        let (page_size, order, filter) = (page_size?, order?, filter?);
        let after = if request.page_token.is_empty() {
            None
        } else {
            match decode_token(&request.page_token, fingerprint(&filter, order), order) {
                Ok(position) => Some(position),
                Err(problem) => {
                    violations.add("page_token", problem);
                    return None;
                }
            }
        };
        Some(Self {
            page_size,
            filter,
            order,
            after,
        })
    }

    /// The token of the page that follows `last`.
    pub fn token_after(&self, last: &Product) -> String {
        let position = self.order.position(last);
        let (int_key, text_key) = match position.key {
            SortKey::Int(value) => (Some(value), None),
            SortKey::Text(value) => (None, Some(value)),
        };
        let token = PageToken {
            version: TOKEN_VERSION,
            binding: fingerprint(&self.filter, self.order),
            int_key,
            text_key,
            id: position.id,
        };
        URL_SAFE_NO_PAD.encode(token.encode_to_vec())
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

fn decode_token(raw: &str, binding: u64, order: Order) -> Result<Position, &'static str> {
    const MALFORMED: &str = "is malformed: pass back a next_page_token unchanged";
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| MALFORMED)?;
    let token = PageToken::decode(bytes.as_slice()).map_err(|_| MALFORMED)?;
    if token.version != TOKEN_VERSION {
        return Err(MALFORMED);
    }
    if token.binding != binding {
        return Err("was issued for other filters or another order");
    }
    let key = match (order, token.int_key, token.text_key) {
        (Order::Name, None, Some(text)) => SortKey::Text(text),
        (Order::Newest | Order::PriceAsc | Order::PriceDesc, Some(value), None) => {
            SortKey::Int(value)
        }
        _ => return Err(MALFORMED),
    };
    let id = parse_id(&token.id).map_err(|_| MALFORMED)?;
    Ok(Position { key, id })
}

/// A stable 64-bit FNV-1a hash of the filters and order, each part length-prefixed so no two
/// different filters hash the same bytes. FNV rather than std's hasher, whose output may change
/// between Rust releases (a token must survive a redeploy).
fn fingerprint(filter: &Filter, order: Order) -> u64 {
    let order_tag = match order {
        Order::Newest => "newest",
        Order::PriceAsc => "price-asc",
        Order::PriceDesc => "price-desc",
        Order::Name => "name",
    };
    let bound = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let parts = [
        order_tag.to_owned(),
        filter.category.clone().unwrap_or_default(),
        filter
            .currency
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        bound(filter.min_price),
        bound(filter.max_price),
        filter.words.join(" "),
        filter.include_archived.to_string(),
    ];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in &parts {
        let length = u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes();
        for byte in length.iter().chain(part.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(request: &pb::ListProductsRequest) -> Result<Listing, tonic::Status> {
        let mut violations = FieldViolations::default();
        let listing = Listing::parse(request, &mut violations);
        violations.finish().map_err(tonic::Status::from)?;
        Ok(listing.expect("no violations, so parsed"))
    }

    fn token(order: Order, filter: Filter, key: SortKey) -> String {
        let (int_key, text_key) = match key {
            SortKey::Int(v) => (Some(v), None),
            SortKey::Text(v) => (None, Some(v)),
        };
        URL_SAFE_NO_PAD.encode(
            PageToken {
                version: TOKEN_VERSION,
                binding: fingerprint(&filter, order),
                int_key,
                text_key,
                id: uuid::Uuid::now_v7().to_string(),
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn page_sizes_default_to_20_and_are_capped_at_100() {
        let size = |page_size| {
            parse(&pb::ListProductsRequest {
                page_size,
                ..Default::default()
            })
        };
        assert_eq!(size(0).expect("valid").page_size, 20);
        assert_eq!(size(7).expect("valid").page_size, 7);
        assert_eq!(size(1000).expect("valid").page_size, 100);
        assert_eq!(
            size(-1).expect_err("negative").code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn queries_become_lower_cased_words() {
        let listing = parse(&pb::ListProductsRequest {
            query: "  Blue   MUG ".into(),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(listing.filter.words, ["blue", "mug"]);
    }

    #[test]
    fn every_filter_problem_is_reported_at_once() {
        let status = parse(&pb::ListProductsRequest {
            page_size: -5,
            min_price_minor: Some(500),
            max_price_minor: Some(100),
            query: "x".repeat(201),
            order_by: 42,
            ..Default::default()
        })
        .expect_err("invalid");
        // page_size, order_by, both bounds without currency, min > max, query.
        assert!(status.message().contains("6 invalid fields"), "{status:?}");
    }

    #[test]
    fn a_token_is_accepted_only_with_the_filters_and_order_it_was_issued_for() {
        let filter = Filter {
            category: Some("kitchen".into()),
            ..Filter::default()
        };
        let issued = token(Order::PriceAsc, filter, SortKey::Int(1999));
        let same = pb::ListProductsRequest {
            category: "kitchen".into(),
            order_by: pb::ProductOrder::PriceAsc as i32,
            page_token: issued.clone(),
            ..Default::default()
        };
        let listing = parse(&same).expect("valid");
        assert_eq!(listing.after.map(|p| p.key), Some(SortKey::Int(1999)));
        for other in [
            pb::ListProductsRequest {
                category: "garden".into(),
                ..same.clone()
            },
            pb::ListProductsRequest {
                order_by: pb::ProductOrder::PriceDesc as i32,
                ..same.clone()
            },
            pb::ListProductsRequest {
                include_archived: true,
                ..same.clone()
            },
        ] {
            assert!(parse(&other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn garbage_tokens_are_invalid_arguments() {
        for garbage in ["%%%", "bm90IGEgdG9rZW4", "AAAA"] {
            let status = parse(&pb::ListProductsRequest {
                page_token: garbage.into(),
                ..Default::default()
            })
            .expect_err("malformed");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{garbage}");
        }
    }

    #[test]
    fn an_unspecified_order_is_newest_first() {
        let listing = parse(&pb::ListProductsRequest::default()).expect("valid");
        assert_eq!(listing.order, Order::Newest);
        assert!(listing.order.descending());
    }
}
