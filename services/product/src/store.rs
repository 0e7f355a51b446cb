//! The catalog's SQL. Every change runs in one write transaction together with its outbox event,
//! so a product is never changed without its event, nor an event published for a change that
//! rolled back.

use agora_platform::{
    events as bus,
    storage::{Backend, Database, Migrations, is_unique_violation},
};
use sqlx::{
    Any, Row as _, Transaction,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use crate::{
    domain::{
        CategorySlug, Currency, Description, ImageUrl, Price, Product, ProductFields, ProductName,
        Sku, Status,
    },
    error::ServiceError,
    events::{self, PRODUCER},
    listing::{Listing, Order, SortKey},
    update::Changes,
};

/// The product service's migrations, per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

/// The columns a [`Product`] is read from, in [`product_from_row`]'s terms.
const COLUMNS: &str = "id, sku, name, description, category, price_minor, currency, image_url, \
                       status, created_at, updated_at";

pub use agora_platform::time::now_micros;

/// The catalog's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

/// A value bound to a listing query.
enum Bind {
    Int(i64),
    Text(String),
}

impl Store {
    /// Wraps a migrated database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a new product and its ProductCreated event.
    ///
    /// # Errors
    /// The SKU is taken, or the database failed.
    pub async fn create(&self, product: &Product) -> Result<(), ServiceError> {
        let mut tx = self.db.begin_write().await?;
        let insert = sqlx::query(
            "INSERT INTO products (id, sku, name, name_key, description, search_text, category,
                                   price_minor, currency, image_url, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&product.id);
        bind_fields(insert, &product.fields)
            .bind(product.status.as_str())
            .bind(product.created_at)
            .bind(product.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(sku_taken_or_failed)?;
        bus::enqueue(&mut tx, PRODUCER, &product.id, &events::created(product)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies `changes` to an active product and records a ProductUpdated event; a change that
    /// leaves every field as it was writes nothing and publishes nothing.
    ///
    /// # Errors
    /// The product is unknown or archived, the new SKU is taken, or the database failed.
    pub async fn update(&self, id: &str, changes: &Changes) -> Result<Product, ServiceError> {
        let mut tx = self.db.begin_write().await?;
        let current = self.locked(&mut tx, id).await?;
        if current.status == Status::Archived {
            return Err(ServiceError::Archived(id.to_owned()));
        }
        let fields = changes.apply(&current.fields);
        if fields == current.fields {
            tx.commit().await?;
            return Ok(current);
        }
        let product = Product {
            fields,
            // Never before the last change, even if the clock stepped back.
            updated_at: now_micros().max(current.updated_at),
            ..current
        };
        let update = sqlx::query(
            "UPDATE products SET sku = $1, name = $2, name_key = $3, description = $4,
                    search_text = $5, category = $6, price_minor = $7, currency = $8,
                    image_url = $9, updated_at = $10
             WHERE id = $11",
        );
        bind_fields(update, &product.fields)
            .bind(product.updated_at)
            .bind(&product.id)
            .execute(&mut *tx)
            .await
            .map_err(sku_taken_or_failed)?;
        bus::enqueue(&mut tx, PRODUCER, &product.id, &events::updated(&product)).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Archives a product and records a ProductArchived event; archiving an archived product
    /// changes nothing and publishes nothing.
    ///
    /// # Errors
    /// The product is unknown, or the database failed.
    pub async fn archive(&self, id: &str) -> Result<Product, ServiceError> {
        let mut tx = self.db.begin_write().await?;
        let current = self.locked(&mut tx, id).await?;
        if current.status == Status::Archived {
            tx.commit().await?;
            return Ok(current);
        }
        let product = Product {
            status: Status::Archived,
            updated_at: now_micros().max(current.updated_at),
            ..current
        };
        sqlx::query("UPDATE products SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(product.status.as_str())
            .bind(product.updated_at)
            .bind(&product.id)
            .execute(&mut *tx)
            .await?;
        bus::enqueue(&mut tx, PRODUCER, &product.id, &events::archived(&product)).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Reads a product inside a write transaction, locking its row on PostgreSQL so concurrent
    /// changes apply one after the other (SQLite's write lock already serialises them).
    async fn locked(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<Product, ServiceError> {
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM products WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(row) => product_from_row(&row),
            None => Err(ServiceError::NotFound(id.to_owned())),
        }
    }

    /// One product, archived or not.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, id: &str) -> Result<Option<Product>, ServiceError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// The products among `ids` that exist, in no particular order.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Product>, ServiceError> {
        let select = format!("SELECT {COLUMNS} FROM products WHERE id IN");
        let rows = self
            .db
            .fetch_in(&select, ids.iter().map(String::as_str))
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// One page of a listing plus, when there is a next page, its first product: the caller
    /// asks for `page_size + 1` rows to know whether another page follows.
    ///
    /// # Errors
    /// The database failed.
    pub async fn list(&self, listing: &Listing) -> Result<Vec<Product>, ServiceError> {
        let mut binds = Vec::new();
        let mut param = |bind: Bind| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        let mut sql = format!("SELECT {COLUMNS} FROM products WHERE 1 = 1");
        let filter = &listing.filter;
        if !filter.include_archived {
            sql.push_str(" AND status = 'active'");
        }
        if let Some(category) = &filter.category {
            sql += &format!(" AND category = {}", param(Bind::Text(category.clone())));
        }
        if let Some(currency) = &filter.currency {
            let currency = Bind::Text(currency.as_str().to_owned());
            sql += &format!(" AND currency = {}", param(currency));
        }
        if let Some(min) = filter.min_price {
            sql += &format!(" AND price_minor >= {}", param(Bind::Int(min)));
        }
        if let Some(max) = filter.max_price {
            sql += &format!(" AND price_minor <= {}", param(Bind::Int(max)));
        }
        for word in &filter.words {
            let pattern = Bind::Text(format!("%{}%", escape_like(word)));
            sql += &format!(" AND search_text LIKE {} ESCAPE '\\'", param(pattern));
        }
        let column = match listing.order {
            Order::Newest => "created_at",
            Order::PriceAsc | Order::PriceDesc => "price_minor",
            Order::Name => "name_key",
        };
        let (direction, after) = if listing.order.descending() {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        if let Some(position) = &listing.after {
            let key = match &position.key {
                SortKey::Int(value) => param(Bind::Int(*value)),
                SortKey::Text(value) => param(Bind::Text(value.clone())),
            };
            let id = param(Bind::Text(position.id.clone()));
            sql += &format!(" AND ({column}, id) {after} ({key}, {id})");
        }
        sql += &format!(
            " ORDER BY {column} {direction}, id {direction} LIMIT {}",
            listing.page_size + 1
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Int(value) => query.bind(value),
                Bind::Text(value) => query.bind(value),
            };
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter().map(product_from_row).collect()
    }

    /// Every category with at least one active product and its number of active products, by
    /// name.
    ///
    /// # Errors
    /// The database failed.
    pub async fn categories(&self) -> Result<Vec<(String, i64)>, ServiceError> {
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS products FROM products WHERE status = 'active'
             GROUP BY category ORDER BY category",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("category")?, row.try_get("products")?)))
            .collect()
    }
}

/// Binds a product's fields to the next parameters, in the order of the columns `sku`, `name`,
/// `name_key`, `description`, `search_text`, `category`, `price_minor`, `currency`, `image_url`.
fn bind_fields<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    fields: &'q ProductFields,
) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(fields.sku.as_str())
        .bind(fields.name.as_str())
        .bind(fields.name_key())
        .bind(fields.description.as_str())
        .bind(fields.search_text())
        .bind(fields.category.as_str())
        .bind(fields.price.amount_minor)
        .bind(fields.price.currency.as_str())
        .bind(fields.image_url.as_str())
}

/// Why writing a product's fields failed: a unique violation means its SKU is another
/// product's.
fn sku_taken_or_failed(error: sqlx::Error) -> ServiceError {
    if is_unique_violation(&error) {
        ServiceError::SkuTaken
    } else {
        error.into()
    }
}

/// Escapes LIKE's wildcards (and the escape character itself), so a query word matches itself.
fn escape_like(word: &str) -> String {
    let mut escaped = String::with_capacity(word.len());
    for c in word.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn product_from_row(row: &AnyRow) -> Result<Product, ServiceError> {
    let status: String = row.try_get("status")?;
    let status = Status::from_column(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown product status {status:?}").into()))?;
    Ok(Product {
        id: row.try_get("id")?,
        fields: ProductFields {
            sku: Sku::from_store(row.try_get("sku")?),
            name: ProductName::from_store(row.try_get("name")?),
            description: Description::from_store(row.try_get("description")?),
            category: CategorySlug::from_store(row.try_get("category")?),
            price: Price {
                currency: Currency::from_store(row.try_get("currency")?),
                amount_minor: row.try_get("price_minor")?,
            },
            image_url: ImageUrl::from_store(row.try_get("image_url")?),
        },
        status,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_query_words_match_themselves() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("mug"), "mug");
    }
}
