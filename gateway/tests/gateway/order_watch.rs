//! WatchOrder through a whole edge in front of the real auth, product, inventory and order
//! services: each Server-Sent Event's id is the message's resume token, a reconnect with
//! `Last-Event-ID` resumes the watch, and a watch past the caller's cap is 429 with Retry-After.

use std::net::SocketAddr;

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient},
    order::v1::{self as pb, order_service_client::OrderServiceClient},
    product::v1::{self as prod, product_service_client::ProductServiceClient},
};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, authed, email, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::whole_edge::{PATIENCE, edge_config, http1, serve_edge};

/// The four services on the embedded backend, a whole edge in front, and a shopper's CONFIRMED
/// order.
struct Shop {
    _mesh: TestMesh,
    edge: SocketAddr,
    _stop: oneshot::Sender<()>,
    orders: OrderServiceClient<tonic::transport::Channel>,
    token: String,
    order_id: String,
}

async fn shop(order_settings: &[(&str, serde_json::Value)]) -> Shop {
    let mut mesh = TestMesh::start(TestBackend::Embedded)
        .await
        .expect("the embedded backend always runs");
    mesh.spawn_service(agora_product::SERVICE).await;
    mesh.spawn_service(agora_inventory::SERVICE).await;
    mesh.spawn_with(
        ServiceKind::Order,
        order_settings,
        |config, listener, shutdown| async move {
            agora_order::SERVICE
                .serve(&config, listener, shutdown)
                .await
        },
    )
    .await;
    let (edge, stop) = serve_edge(edge_config(&mesh, ServiceKind::Order)).await;

    let admin = mesh.admin_token().await;
    let product = ProductServiceClient::new(mesh.channel(ServiceKind::Product))
        .create_product(authed(
            prod::CreateProductRequest {
                product: Some(prod::Product {
                    sku: format!("SKU-{}", uuid::Uuid::now_v7().simple()).to_uppercase(),
                    name: "Kettle".into(),
                    description: "for tests".into(),
                    category: "things".into(),
                    price: Some(Money {
                        currency_code: "EUR".into(),
                        amount_minor: 2500,
                    }),
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .expect("the product is created")
        .into_inner()
        .product
        .expect("a product");
    let inventory = InventoryServiceClient::new(mesh.channel(ServiceKind::Inventory));
    eventually("the stock record opens", PATIENCE, || {
        let mut inventory = inventory.clone();
        let (id, admin) = (product.id.clone(), admin.clone());
        async move {
            inventory
                .adjust_stock(authed(
                    inv::AdjustStockRequest {
                        product_id: id,
                        delta: 5,
                        reason: inv::AdjustmentReason::Restock as i32,
                        note: String::new(),
                    },
                    &admin,
                ))
                .await
                .ok()
        }
    })
    .await;
    let (_, token) = mesh.register(&email("watcher")).await;
    let mut orders = OrderServiceClient::new(mesh.channel(ServiceKind::Order));
    let order = orders
        .create_order(authed(
            pb::CreateOrderRequest {
                idempotency_key: "k-1".into(),
                lines: vec![pb::OrderLineInput {
                    product_id: product.id.clone(),
                    quantity: 1,
                }],
                shipping_address: None,
            },
            &token,
        ))
        .await
        .expect("placed")
        .into_inner()
        .order
        .expect("an order");
    Shop {
        _mesh: mesh,
        edge,
        _stop: stop,
        orders,
        token,
        order_id: order.id,
    }
}

impl Shop {
    fn watch_head(&self, last_event_id: Option<&str>) -> String {
        let mut head = format!(
            "GET /v1/orders/{}:watch HTTP/1.1\r\naccept: text/event-stream\r\nauthorization: Bearer {}",
            self.order_id, self.token
        );
        if let Some(id) = last_event_id {
            head.push_str(&format!("\r\nlast-event-id: {id}"));
        }
        head
    }

    /// Opens an SSE watch on a connection of its own, left open.
    async fn open(&self, last_event_id: Option<&str>) -> Events {
        let mut socket = TcpStream::connect(self.edge)
            .await
            .expect("the edge accepts");
        let head = format!("{}\r\nhost: edge\r\n\r\n", self.watch_head(last_event_id));
        socket.write_all(head.as_bytes()).await.expect("sent");
        Events {
            socket,
            raw: String::new(),
        }
    }

    async fn cancel(&self) {
        self.orders
            .clone()
            .cancel_order(authed(
                pb::CancelOrderRequest {
                    order_id: self.order_id.clone(),
                    reason: "changed my mind".into(),
                },
                &self.token,
            ))
            .await
            .expect("cancelled");
    }
}

/// The raw answer of an open SSE watch, read as events arrive.
struct Events {
    socket: TcpStream,
    raw: String,
}

/// One event: its id and its data.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: serde_json::Value,
}

impl Events {
    /// The HTTP status of the answer.
    async fn status(&mut self) -> u16 {
        while !self.raw.contains("\r\n") {
            self.read().await;
        }
        self.raw
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line")
    }

    async fn read(&mut self) {
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout(PATIENCE, self.socket.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "the answer ended early: {}", self.raw);
        self.raw.push_str(&String::from_utf8_lossy(&chunk[..read]));
    }

    /// The `n`th (from 0) `data:` event of the stream, waiting for it within [`PATIENCE`].
    async fn event(&mut self, n: usize) -> Event {
        loop {
            if let Some(event) = parse_events(&self.raw).into_iter().nth(n) {
                return event;
            }
            self.read().await;
        }
    }
}

/// The events in a raw (chunked) SSE answer: each frame arrives as one chunk, so its lines are
/// whole.
fn parse_events(raw: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut id = None;
    for line in raw.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push(Event {
                id: id.take(),
                data: serde_json::from_str(data).expect("JSON data"),
            });
        }
    }
    events
}

fn status_of(event: &Event) -> &str {
    event.data["result"]["order"]["status"]
        .as_str()
        .expect("an order status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_event_ids_are_resume_tokens_and_last_event_id_resumes_the_watch() {
    let shop = shop(&[]).await;
    let mut first = shop.open(None).await;
    let confirmed = first.event(0).await;
    assert_eq!(status_of(&confirmed), "ORDER_STATUS_CONFIRMED");
    let token = confirmed.id.clone().expect("an event id");
    assert_eq!(
        confirmed.data["result"]["resumeToken"].as_str(),
        Some(token.as_str()),
        "the id is the message's resume token"
    );
    drop(first);

    shop.cancel().await;
    // The reconnect names the last event it saw: it gets the change it missed.
    let mut resumed = shop.open(Some(&token)).await;
    let cancelled = resumed.event(0).await;
    assert_eq!(status_of(&cancelled), "ORDER_STATUS_CANCELLED");
    let last = cancelled.id.clone().expect("an event id");
    assert_ne!(last, token);

    // Reconnecting after the final state it saw: the stream ends at once, with no event.
    let answer = http1(shop.edge, &shop.watch_head(Some(&last)), b"").await;
    assert_eq!(answer.status, 200);
    assert!(
        parse_events(&String::from_utf8_lossy(&answer.body)).is_empty(),
        "nothing after the final state: {:?}",
        String::from_utf8_lossy(&answer.body)
    );

    // A Last-Event-ID the service did not issue is the request's error.
    let bad = http1(shop.edge, &shop.watch_head(Some("not-a-token")), b"").await;
    assert_eq!(bad.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&bad.body).expect("a JSON error");
    assert!(body.to_string().contains("resume_token"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_past_the_callers_cap_is_429_with_retry_after() {
    let shop = shop(&[("order.watch.max_per_user", 1.into())]).await;
    let mut open = shop.open(None).await;
    assert_eq!(status_of(&open.event(0).await), "ORDER_STATUS_CONFIRMED");

    let refused = http1(shop.edge, &shop.watch_head(None), b"").await;
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after >= 1);
    drop(open);

    // Once the open stream is gone, its slot serves the next watch.
    let mut again = eventually("the slot is free again", PATIENCE, || async {
        let mut events = shop.open(None).await;
        (events.status().await == 200).then_some(events)
    })
    .await;
    assert_eq!(status_of(&again.event(0).await), "ORDER_STATUS_CONFIRMED");
}
