//! The demo's `avro-confluent` variant: events framed as Confluent's serializers frame them
//! (byte 0, the 4-byte schema id, the Avro datum), and a schema registry the demo serves
//! in-process (the REST subset meshd reads: `GET /schemas/ids/{id}`), so the path from a
//! Confluent producer to the table runs with no services.

use std::net::SocketAddr;

use apache_avro::types::Value;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;

/// The id the demo registers the reference schema under.
pub const SCHEMA_ID: u32 = 1;

/// Serves the reference schema as id 1 until `shutdown`; returns the registry's URL.
pub async fn serve_registry(
    schema: &'static str,
    shutdown: CancellationToken,
) -> Result<String, RuntimeError> {
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        get(move |Path(id): Path<u32>| async move {
            if id == SCHEMA_ID {
                axum::Json(serde_json::json!({ "schema": schema })).into_response()
            } else {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(
                        serde_json::json!({"error_code": 40403, "message": "Schema not found"}),
                    ),
                )
                    .into_response()
            }
        }),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RuntimeError::Listen { addr, source })?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(format!("http://{bound}"))
}

/// Event `n` framed for the registry's id 1, or every `bad_every`th a malformed frame (a
/// wrong magic byte, an id the registry does not know, a truncated datum, in turn).
pub fn frame(n: u64, json: &[u8], schema: &apache_avro::Schema, bad_every: u64) -> Vec<u8> {
    let datum = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|event| to_avro(&event))
        .and_then(|record| apache_avro::to_avro_datum(schema, record).ok())
        .unwrap_or_default();
    let bad = bad_every > 0 && n % bad_every == bad_every - 1;
    let (magic, id, cut) = match (bad, (n / bad_every.max(1)) % 3) {
        (false, _) => (0u8, SCHEMA_ID, 0),
        (true, 0) => (1, SCHEMA_ID, 0),
        (true, 1) => (0, SCHEMA_ID + 1, 0),
        (true, _) => (0, SCHEMA_ID, 3),
    };
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(magic);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum[..datum.len().saturating_sub(cut)]);
    out
}

/// The reference event as an Avro record of the reference schema (None for a malformed
/// event, which the demo frames anyway to show a dead letter).
fn to_avro(event: &serde_json::Value) -> Option<Value> {
    let text = |name: &str| Some(Value::String(event[name].as_str()?.to_string()));
    let amount = event["amount"].as_str()?;
    let (whole, cents) = amount.split_once('.')?;
    let unscaled: i128 = format!("{whole}{cents:0<2}").parse().ok()?;
    let status = ["AUTHORIZED", "SETTLED", "REFUNDED"]
        .iter()
        .position(|s| Some(*s) == event["status"].as_str())?;
    let card = match event["card_last4"].as_str() {
        Some(card) => Value::Union(1, Box::new(Value::String(card.to_string()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Some(Value::Record(vec![
        ("transaction_id".into(), text("transaction_id")?),
        (
            "account_id".into(),
            Value::Long(event["account_id"].as_i64()?),
        ),
        ("email".into(), text("email")?),
        ("card_last4".into(), card),
        (
            "amount".into(),
            Value::Decimal(apache_avro::Decimal::from(unscaled.to_be_bytes().to_vec())),
        ),
        ("currency".into(), text("currency")?),
        ("region".into(), text("region")?),
        (
            "status".into(),
            Value::Enum(status as u32, event["status"].as_str()?.to_string()),
        ),
        (
            "event_time".into(),
            Value::TimestampMillis(event["event_time"].as_i64()?),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Reason;
    use crate::decode::confluent::{ConfluentDecoders, schema_id};

    const SCHEMA: &str = include_str!("../../../examples/payments/schema/transactions.avsc");

    #[test]
    fn frames_decode_through_meshds_own_confluent_decoder() {
        let schema = apache_avro::Schema::parse_str(SCHEMA).expect("schema");
        let frames: Vec<Vec<u8>> = (0..12)
            .map(|n| {
                let (_, json) = super::super::payment_event(n, 4);
                frame(n, &json, &schema, 4)
            })
            .collect();
        assert_eq!(schema_id(&frames[0]), Ok(SCHEMA_ID));
        let mut decoders = ConfluentDecoders::new(SCHEMA, 4);
        assert_eq!(decoders.learn(SCHEMA_ID, SCHEMA), None);
        decoders.unknown(SCHEMA_ID + 1);
        let payloads: Vec<Option<&[u8]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let (rows, rejected) = decoders.decode(&payloads, 1 << 20).outcome();
        assert_eq!(rows.len(), 9, "every good event decodes");
        let reasons: Vec<Reason> = rejected.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            reasons,
            vec![Reason::Decode, Reason::SchemaId, Reason::Decode]
        );
    }
}
