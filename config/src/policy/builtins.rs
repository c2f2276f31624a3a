//! Built-in functions policies need that regorus leaves out: `crypto.sha256(s)` and
//! `crypto.hmac.sha256(s, key)`, both lower-case hex as in OPA. They let a rule check a
//! masked value against a known one (e.g. in a policy test) without leaving Rego.
//! (`anyhow` appears here only because regorus's extension API is written in it.)

use hmac::{Hmac, Mac};
use regorus::{Engine, Value};
use sha2::{Digest, Sha256};

/// Adds the extra built-ins to an engine.
pub fn register(engine: &mut Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "crypto.sha256".to_string(),
        1,
        Box::new(|args: Vec<Value>| {
            let text = string_arg(&args, 0, "crypto.sha256")?;
            Ok(Value::from(hex::encode(Sha256::digest(text.as_bytes()))))
        }),
    )?;
    engine.add_extension(
        "crypto.hmac.sha256".to_string(),
        2,
        Box::new(|args: Vec<Value>| {
            let text = string_arg(&args, 0, "crypto.hmac.sha256")?;
            let key = string_arg(&args, 1, "crypto.hmac.sha256")?;
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .map_err(|e| anyhow::Error::msg(format!("crypto.hmac.sha256: {e}")))?;
            mac.update(text.as_bytes());
            Ok(Value::from(hex::encode(mac.finalize().into_bytes())))
        }),
    )?;
    Ok(())
}

fn string_arg(args: &[Value], i: usize, function: &str) -> anyhow::Result<String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        _ => Err(anyhow::Error::msg(format!(
            "{function}: argument {} must be a string",
            i + 1
        ))),
    }
}
