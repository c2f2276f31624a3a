"""The peer of meshd's end-to-end bench: the pipeline a data team would write instead of meshd.

It reads the same JSON payment records from Kafka with confluent-kafka, parses and validates
each one, masks the PII columns the way meshd does (email -> hex SHA-256, card_last4 ->
"[REDACTED]" unless null) and appends pyarrow tables of --batch-rows rows to an Iceberg table
with pyiceberg, committing the Kafka offsets after each successful append (at-least-once).

It is written the way a competent engineer would write it on an ordinary day, so that the
comparison is fair to both sides: idiomatic and reasonably efficient (batched consume, column
lists, one pa.Table per batch), but with no heroics (no multiprocessing, no orjson, no
hand-rolled Arrow builders), and nothing deliberately slow either.

Prints one JSON line: records, rows, dead, seconds, cpu_seconds, peak_rss_mib, appends.

Usage: peer_pipeline.py --bootstrap HOST:PORT --topic TOPIC --count N
           --catalog-uri sqlite:////abs/catalog.db --warehouse file:///abs/warehouse
           --table peer.payments [--batch-rows 100000] [--timeout 600]
"""

import argparse
import hashlib
import json
import resource
import sys
import time
import uuid
from decimal import Decimal, InvalidOperation

import pyarrow as pa
from confluent_kafka import Consumer, KafkaException
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (DecimalType, LongType, NestedField, StringType,
                             TimestampType)

try:  # pyiceberg computes the day(event_time) partition of an append with pyiceberg-core
    import pyiceberg_core  # noqa: F401
except ImportError:
    sys.exit("peer_pipeline: needs pyiceberg-core: pip install 'pyiceberg[pyiceberg-core]==0.12.0'")

SCHEMA = Schema(
    NestedField(1, "transaction_id", StringType(), required=True),
    NestedField(2, "account_id", LongType(), required=True),
    NestedField(3, "email", StringType(), required=True),
    NestedField(4, "card_last4", StringType(), required=False),
    NestedField(5, "amount", DecimalType(18, 2), required=True),
    NestedField(6, "currency", StringType(), required=True),
    NestedField(7, "region", StringType(), required=True),
    NestedField(8, "status", StringType(), required=True),
    NestedField(9, "event_time", TimestampType(), required=True),
)
SPEC = PartitionSpec(PartitionField(source_id=9, field_id=1000, transform=DayTransform(), name="event_time_day"))
ARROW_SCHEMA = pa.schema([
    pa.field("transaction_id", pa.string(), nullable=False),
    pa.field("account_id", pa.int64(), nullable=False),
    pa.field("email", pa.string(), nullable=False),
    pa.field("card_last4", pa.string(), nullable=True),
    pa.field("amount", pa.decimal128(18, 2), nullable=False),
    pa.field("currency", pa.string(), nullable=False),
    pa.field("region", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("event_time", pa.timestamp("us"), nullable=False),
])
STATUSES = {"AUTHORIZED", "SETTLED", "REFUNDED"}
CENTS = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 16
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
MILLIS_MIN, MILLIS_MAX = LONG_MIN // 1000, LONG_MAX // 1000


def parse(value, cols):
    """Parses, validates and masks one record into the column lists; False if it is dead."""
    try:
        r = json.loads(value)
        tx, account, email, card = r["transaction_id"], r["account_id"], r["email"], r["card_last4"]
        currency, region, status, millis = r["currency"], r["region"], r["status"], r["event_time"]
        amount = Decimal(r["amount"]) if isinstance(r["amount"], str) else None
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return False
    if not (isinstance(tx, str) and isinstance(email, str) and isinstance(currency, str)
            and isinstance(region, str) and isinstance(status, str) and status in STATUSES
            and (card is None or isinstance(card, str))
            and type(account) is int and LONG_MIN <= account <= LONG_MAX
            and type(millis) is int and MILLIS_MIN <= millis <= MILLIS_MAX
            and amount is not None and amount.is_finite() and abs(amount) < MAX_AMOUNT
            and amount.quantize(CENTS) == amount):
        return False
    cols["transaction_id"].append(tx)
    cols["account_id"].append(account)
    cols["email"].append(hashlib.sha256(email.encode()).hexdigest())
    cols["card_last4"].append(None if card is None else "[REDACTED]")
    cols["amount"].append(amount.quantize(CENTS))
    cols["currency"].append(currency)
    cols["region"].append(region)
    cols["status"].append(status)
    cols["event_time"].append(millis * 1000)
    return True


def empty_columns():
    return {name: [] for name in ARROW_SCHEMA.names}


def open_table(args):
    catalog = SqlCatalog("peer", uri=args.catalog_uri, warehouse=args.warehouse)
    namespace = args.table.rsplit(".", 1)[0]
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    try:
        return catalog.load_table(args.table)
    except NoSuchTableError:
        return catalog.create_table(args.table, schema=SCHEMA, partition_spec=SPEC)


def fail(message):
    print(f"peer_pipeline: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--catalog-uri", required=True)
    p.add_argument("--warehouse", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--batch-rows", type=int, default=100_000)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()

    table = open_table(args)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"peer-pipeline-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        topics = consumer.list_topics(args.topic, timeout=15).topics
    except KafkaException as e:
        fail(f"broker {args.bootstrap} unreachable: {e}")
    if args.topic not in topics or topics[args.topic].error is not None:
        fail(f"topic {args.topic} not found on {args.bootstrap}")
    consumer.subscribe([args.topic])

    deadline = time.monotonic() + args.timeout
    cols, records, dead, rows, appends = empty_columns(), 0, 0, 0, 0
    pending = 0  # records consumed since the last commit
    started = cpu_started = None

    def flush():
        nonlocal rows, appends, cols, pending
        batch = len(cols["transaction_id"])
        if batch:
            table.append(pa.Table.from_pydict(cols, schema=ARROW_SCHEMA))
            rows, appends, cols = rows + batch, appends + 1, empty_columns()
        if pending:
            consumer.commit(asynchronous=False)
            pending = 0

    while records < args.count:
        if time.monotonic() > deadline:
            fail(f"timed out after {args.timeout:.0f}s with {records} of {args.count} records")
        # Never read past the batch boundary, so committing the consumer's position after an
        # append commits exactly what has been appended (or was dead).
        room = args.batch_rows - len(cols["transaction_id"])
        messages = consumer.consume(num_messages=min(10_000, room, args.count - records), timeout=1.0)
        for msg in messages:
            if msg.error():
                fail(f"consume error: {msg.error()}")
            if started is None:
                started, cpu_started = time.monotonic(), time.process_time()
            records += 1
            pending += 1
            if not parse(msg.value(), cols):
                dead += 1
        if len(cols["transaction_id"]) >= args.batch_rows:
            flush()
    flush()

    seconds = time.monotonic() - started if started else 0.0
    cpu = time.process_time() - cpu_started if started else 0.0
    consumer.close()
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "records": records, "rows": rows, "dead": dead, "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3), "peak_rss_mib": round(peak_rss_mib, 1), "appends": appends,
    }))


if __name__ == "__main__":
    main()
