#!/usr/bin/env python3
"""The invariant checks of scripts/chaos.sh, once the mesh has settled after a fault.

Reads every service's PostgreSQL database (with psql) and the load generator's records (what
each client was told, and what the API says now), prints one table row per check (name,
expected, actual, PASS/FAIL) and exits 1 on any violation.

Usage: chaos_check.py FAULT PG_BASE_URL RUN_TAG PRODUCTS.jsonl LOAD.jsonl VERIFY.jsonl
(the databases are <RUN_TAG>_<service>).
"""

import collections
import csv
import io
import json
import subprocess
import sys

fault, pg_base, run, products_file, load_file, verify_file = sys.argv[1:7]


def query(service, sql):
    """Rows of `sql` in the service's database, as lists of strings."""
    out = subprocess.run(
        ["psql", f"{pg_base}/{run}_{service}", "-qAt", "--csv", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return list(csv.reader(io.StringIO(out)))


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(data):
    """(field number, wire type, value) of an encoded Protobuf message."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def order_lines(body_hex):
    """{product_id: quantity} of an order's stored body (agora.order.v1.Order: lines = 4;
    OrderLine: product_id = 1, quantity = 4)."""
    lines = collections.Counter()
    for number, _, value in fields(bytes.fromhex(body_hex)):
        if number != 4:
            continue
        product, quantity = "", 0
        for n, _, v in fields(value):
            if n == 1:
                product = v.decode()
            elif n == 4:
                quantity = v
        lines[product] += quantity
    return lines


results = []


def check(name, expected, actual, ok):
    results.append((name, str(expected), str(actual), "PASS" if ok else "FAIL"))


def sample(items, n=3):
    items = sorted(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


initial = {p["product_id"]: int(p["on_hand"]) for p in jsonl(products_file)}
records = jsonl(load_file)
verified = jsonl(verify_file)

stock = {r[0]: tuple(map(int, r[1:4])) for r in query("inventory", "SELECT product_id, on_hand, available, reserved FROM stock")}
reservations = {r[0]: r[1] for r in query("inventory", "SELECT order_id, state FROM reservations")}
reserved_lines = collections.defaultdict(collections.Counter)
for order_id, product_id, quantity in query("inventory", "SELECT order_id, product_id, quantity FROM reservation_lines"):
    reserved_lines[order_id][product_id] += int(quantity)
orders = {r[0]: {"user": r[1], "status": r[2], "lines": order_lines(r[3])}
          for r in query("order", "SELECT id, user_id, status, encode(body, 'hex') FROM orders")}
claims = query("order", "SELECT user_id, idem_key, order_id, placed FROM idempotency_keys")

# Stock.
confirmed_units = collections.Counter()
for order in orders.values():
    if order["status"] == "confirmed":
        confirmed_units.update(order["lines"])
bad = [f"{p[:8]}: {initial[p]}-{stock.get(p, (None,))[0]} != {confirmed_units[p]}"
       for p in initial if p not in stock or initial[p] - stock[p][0] != confirmed_units[p]]
check("stock: initial - on_hand = units of confirmed orders", f"{len(initial)} products", "ok" if not bad else sample(bad), not bad)
bad = [p[:8] for p, (h, a, r) in stock.items() if h != a + r]
check("stock: on_hand = available + reserved", "0 products off", len(bad), not bad)
bad = [p[:8] for p, (h, a, r) in stock.items() if a < 0 or r < 0]
check("stock: available >= 0 and reserved >= 0", "0 products off", len(bad), not bad)

# Reservations against orders.
confirmed = {i for i, o in orders.items() if o["status"] == "confirmed"}
committed = {i for i, s in reservations.items() if s == "committed"}
bad = confirmed - committed
check("every confirmed order has a committed reservation", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = committed - confirmed
check("every committed reservation has a confirmed order", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = {i for i, o in orders.items() if o["status"] == "cancelled" and reservations.get(i) not in ("released", "expired")}
check("cancelled orders' reservations released", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = {i for i, o in orders.items() if o["status"] == "failed" and reservations.get(i) in ("committed", "pending")}
check("failed orders hold no stock", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = {i for i, s in reservations.items() if s == "pending"}
check("no reservation left pending", 0, len(bad), not bad)
bad = {i for i in confirmed if reserved_lines.get(i, collections.Counter()) != orders[i]["lines"]}
check("committed lines = confirmed order lines", 0, len(bad), not bad)
movement_dups = query("inventory", "SELECT order_id, product_id, kind, count(*) FROM movements WHERE order_id <> '' "
                      "GROUP BY 1, 2, 3 HAVING count(*) > 1")
check("one ledger line per order, product and change", 0, len(movement_dups), not movement_dups)

# Orders and idempotency keys.
bad = {i for i, o in orders.items() if o["status"] == "pending"}
check("no order left PENDING", 0, len(bad), not bad)
by_order = collections.Counter(c[2] for c in claims)
bad = {i for i in orders if by_order[i] != 1}
check("every order has exactly one idempotency key", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = {(c[1]) for c in claims if c[2] not in orders or c[3] != "1"}
check("no unfinished idempotency claim", 0, f"{len(bad)} {sample(bad)}".strip(), not bad)
bad = [r["key"] for r in records if len(set(r["order_ids"])) > 1]
check("one order id per key across retries", 0, len(bad), not bad)
claim_of = {(c[0], c[1]): c[2] for c in claims}
told = collections.Counter(r["outcome"] for r in records)
check("load placed orders", "> 0 ok", dict(told), told["ok"] > 0)
consistent = {
    "confirmed": {"confirmed", "cancelled"},
    "pending": {"confirmed", "cancelled", "failed"},
    "cancelled": {"cancelled"},
    "failed": {"failed"},
}
missing, wrong, other_key = [], [], []
for r in records:
    if r["outcome"] != "ok":
        continue
    stored = orders.get(r["order_id"])
    if stored is None or stored["user"] != r["user_id"]:
        missing.append(r["key"])
        continue
    if claim_of.get((r["user_id"], r["key"])) != r["order_id"]:
        other_key.append(r["key"])
    allowed = set(consistent.get(r["status"], ()))
    if r["status"] == "confirmed" and r.get("cancel") not in ("unknown", "refused", "done"):
        allowed = {"confirmed"}
    if stored["status"] not in allowed:
        wrong.append(f"{r['key']}: told {r['status']}, stored {stored['status']}")
check("every acknowledged order is stored, same id and user", 0, f"{len(missing)} {sample(missing)}".strip(), not missing)
check("acknowledged orders' keys name them", 0, f"{len(other_key)} {sample(other_key)}".strip(), not other_key)
check("stored status consistent with what the client was told", 0, f"{len(wrong)} {sample(wrong, 2)}".strip(), not wrong)
bad = [r["key"] for r in records if r["outcome"] == "refused"
       and (o := orders.get(claim_of.get((r["user_id"], r["key"]), ""))) and o["status"] in ("confirmed", "pending")]
check("a refused key placed no order", 0, len(bad), not bad)
bad = [r["key"] for r in records if r["outcome"] == "unknown"]
check("every key got a definite answer", 0, f"{len(bad)} {sample(bad, 2)}".strip(), not bad)
bad = [f"{v['key']}: api {v['api_status']}, db {orders.get(v['order_id'], {}).get('status')}"
       for v in verified if v["api_status"] != orders.get(v["order_id"], {}).get("status")]
check("the API reads back every acknowledged order as stored", f"{len(verified)} read", f"{len(bad)} off {sample(bad, 2)}".strip(), not bad and len(verified) == told["ok"])

# Events.
for service in ("auth", "user", "product", "inventory", "order"):
    unpublished = int(query(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]) \
        if query(service, "SELECT to_regclass('outbox') IS NOT NULL")[0][0] == "t" else 0
    check(f"{service} outbox drained", 0, unpublished, unpublished == 0)
registered = {r[0] for r in query("auth", "SELECT event_id FROM outbox WHERE event_type LIKE '%UserRegistered'")}
applied = {r[0] for r in query("user", "SELECT event_id FROM processed_events WHERE consumer = 'user'")}
check("UserRegistered: every event applied by user, none unknown", f"{len(registered)} events",
      f"{len(registered - applied)} missing, {len(applied - registered)} unknown", registered == applied)
created = {r[0] for r in query("product", "SELECT event_id FROM outbox WHERE event_type LIKE '%ProductCreated' OR event_type LIKE '%ProductArchived'")}
applied = {r[0] for r in query("inventory", "SELECT event_id FROM processed_events WHERE consumer = 'inventory'")}
check("ProductCreated/Archived: every event applied by inventory", f"{len(created)} events",
      f"{len(created - applied)} missing, {len(applied - created)} unknown", created == applied)
opened = query("inventory", "SELECT product_id, count(*) FROM movements WHERE kind = 'opened' GROUP BY 1 HAVING count(*) <> 1")
check("each stock record opened exactly once", 0, len(opened), not opened)
users = {r[0] for r in query("auth", "SELECT id FROM users")}
profiles = {r[0] for r in query("user", "SELECT user_id FROM profiles")}
check("every user has a profile", f"{len(users)} users", f"{len(users - profiles)} without, {len(profiles - users)} extra",
      users == profiles)
products = {r[0] for r in query("product", "SELECT id FROM products")}
check("every product has a stock record", f"{len(products)} products",
      f"{len(products - set(stock))} without, {len(set(stock) - products)} extra", products == set(stock))

width = max(len(r[0]) for r in results)
print(f"\n== fault: {fault} ==")
print(f"{'check':<{width}}  {'expected':<14}  {'actual':<40}  result")
for name, expected, actual, verdict in results:
    print(f"{name:<{width}}  {expected:<14}  {actual:<40}  {verdict}")
seen = collections.Counter(code for r in records for code in r["retried_on"])
print(f"keys: {dict(told)}; failed attempts by code: {dict(seen)}; "
      f"cancels: {dict(collections.Counter(r['cancel'] for r in records if r['cancel']))}")
failed = sum(1 for r in results if r[3] == "FAIL")
print(f"{fault}: {len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
