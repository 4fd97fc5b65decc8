//! The committed JSON Schema is the one the Rust types generate. After changing the schema's
//! types: `TERN_WRITE_SCHEMA=1 cargo test -p tern-topology --test it json_schema`.

use tern_topology::json_schema;

#[test]
fn the_committed_json_schema_is_generated_from_the_types() {
    let path = json_schema::committed_path();
    if std::env::var_os("TERN_WRITE_SCHEMA").is_some() {
        json_schema::write(&path).expect("write the schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == json_schema::generate(),
        "{} is not what the types generate: run TERN_WRITE_SCHEMA=1 cargo test -p tern-topology --test it json_schema",
        path.display()
    );
}

#[test]
fn the_schema_refuses_unknown_fields_and_documents_them() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema::generate()).expect("json");
    assert_eq!(schema["additionalProperties"], false);
    let table = &schema["$defs"]["Table"];
    assert_eq!(table["additionalProperties"], false);
    assert!(table["properties"]["default-ttl"].is_object(), "{table}");
    let required: Vec<&str> =
        table["required"].as_array().expect("required").iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(required, ["name", "partitions", "replicas", "copies"]);
    assert_eq!(schema["$defs"]["Role"]["enum"], serde_json::json!(["active", "standby"]));
}
