"""Generated Python clients browse the demo catalog and read stock from a running mesh: paging
with page tokens, batch reads, and rich INVALID_ARGUMENT details decoded in Python.

Run by scripts/e2e-python-client.sh, which generates the stubs and starts the mesh."""

import os
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agora.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from agora.product.v1 import product_pb2, product_pb2_grpc

passed = 0


def check(condition, what):
    global passed
    if not condition:
        print(f"python: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    passed += 1
    print(f"python: ok: {what}")


products = product_pb2_grpc.ProductServiceStub(grpc.insecure_channel(os.environ["AGORA_PRODUCT_ADDR"]))
inventory = inventory_pb2_grpc.InventoryServiceStub(
    grpc.insecure_channel(os.environ["AGORA_INVENTORY_ADDR"])
)

# Walk the whole catalog, seven at a time, cheapest first.
seen, token = [], ""
while True:
    page = products.ListProducts(
        product_pb2.ListProductsRequest(
            page_size=7, page_token=token, order_by=product_pb2.PRODUCT_ORDER_PRICE_ASC
        )
    )
    seen.extend(page.products)
    token = page.next_page_token
    if not token:
        break
check(len(seen) == 30 and len({p.id for p in seen}) == 30, "page tokens walk all 30 products once")
prices = [p.price.amount_minor for p in seen]
check(prices == sorted(prices), "in price order")

levels = inventory.BatchGetStock(inventory_pb2.BatchGetStockRequest(product_ids=[p.id for p in seen[:5]]))
check(
    len(levels.stock_levels) == 5
    and all(s.on_hand == s.available + s.reserved for s in levels.stock_levels),
    "stock of five products, on hand = available + reserved",
)

try:
    products.CreateProduct(product_pb2.CreateProductRequest(product=product_pb2.Product(name="x")))
    check(False, "an anonymous create is refused")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.UNAUTHENTICATED, "an anonymous create is UNAUTHENTICATED")

try:
    inventory.GetStock(inventory_pb2.GetStockRequest(product_id="not-an-id"))
    check(False, "a malformed id is refused")
except grpc.RpcError as error:
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields = [v.field for v in bad_request.field_violations]
    check(
        error.code() == grpc.StatusCode.INVALID_ARGUMENT and fields == ["product_id"],
        "a malformed id is INVALID_ARGUMENT naming product_id",
    )

print(f"python: {passed} passed, 0 failed")
