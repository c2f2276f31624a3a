"""Serializes reference payment events with confluent-kafka's AvroSerializer, registering the
writer schemas in the registry at <url> as a real producer would, and writes the framed records
(magic byte, schema id, datum) for the Rust test to produce to Kafka.

Usage: confluent_frames.py <registry url> <topic> <spec JSON> <out file>

The spec is a list of batches {"schema": <avsc text>, "records": [<record dict>, ...]}; fields
named in "decimals" hold decimal strings. The output has one line per record: the batch index
and the frame in hex.
"""

import decimal
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    url, topic, spec_path, out_path = sys.argv[1:5]
    with open(spec_path) as f:
        batches = json.load(f)
    client = SchemaRegistryClient({"url": url})
    context = SerializationContext(topic, MessageField.VALUE)
    with open(out_path, "w") as out:
        for index, batch in enumerate(batches):
            serializer = AvroSerializer(client, batch["schema"])
            for record in batch["records"]:
                for name in batch.get("decimals", []):
                    record[name] = decimal.Decimal(record[name])
                out.write(f"{index} {serializer(record, context).hex()}\n")


if __name__ == "__main__":
    main()
