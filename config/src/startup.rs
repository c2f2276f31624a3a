//! What `meshd run` refuses before it touches Kafka or a catalog, as diagnostics at
//! file:line:col. The worker refuses a product with these and `meshd validate` reports them as
//! findings, from this one function, so a descriptor that validates also starts.

use crate::descriptor::{DataProduct, InputFormat};
use crate::error::Diagnostic;
use crate::locate::locate;
use crate::masking::Masking;
use crate::platform::PlatformConfig;

/// Problems that stop `meshd run` from starting `product`; `platform` adds the checks that
/// depend on the platform config (a masking key, the schema registry).
pub fn startup_checks(product: &DataProduct, platform: Option<&PlatformConfig>) -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(&product.path).unwrap_or_default();
    let at = |path: String, message: String, hint: &str| {
        let (line, column) = locate(&text, &path);
        Diagnostic {
            file: product.path.clone(),
            line,
            column,
            path,
            message,
            hint: Some(hint.to_string()),
        }
    };
    let mut found = Vec::new();
    // Ports read the same input record: a column name must mean the same type everywhere.
    for (i, schema) in product.schemas.iter().enumerate() {
        for (j, earlier) in product.schemas[..i].iter().enumerate() {
            for column in &schema.fields {
                if let Some(first) = earlier.fields.iter().find(|c| c.name == column.name)
                    && first.ty != column.ty
                {
                    found.push(at(
                        format!("spec.outputPorts[{i}].schema"),
                        format!(
                            "column `{}` has type {:?} in output port {i} but {:?} in output port {j}; ports project the same input record, so a column must have one type",
                            column.name, column.ty, first.ty
                        ),
                        "give the column the same type in every port's schema, or another name",
                    ));
                }
            }
        }
    }
    let Some(platform) = platform else {
        return found;
    };
    for (i, input) in product.spec.spec.input_ports.iter().enumerate() {
        if input.format == InputFormat::AvroConfluent && platform.schema_registry.is_none() {
            found.push(at(
                format!("spec.inputPorts[{i}].format"),
                format!(
                    "input port `{}` reads avro-confluent, and the platform config names no schema registry",
                    input.source
                ),
                "set schemaRegistry.url in the platform config (or MESHD_SCHEMA_REGISTRY_URL)",
            ));
        }
    }
    let keyless = platform.masking.key_file.is_none() && platform.masking.key_env.is_none();
    for (i, schema) in product.schemas.iter().enumerate() {
        if !keyless {
            break;
        }
        for column in schema.all_columns() {
            if column.masking == Some(Masking::HmacSha256) {
                found.push(at(
                    format!("spec.outputPorts[{i}].schema"),
                    format!(
                        "column `{}` is masked with HMAC-SHA256, and the platform config gives no masking key",
                        column.path
                    ),
                    "set masking.keyFile or masking.keyEnv in the platform config",
                ));
            }
        }
    }
    found
}
