//! Tool input schemas as the model needs them. Claude Code sends every tool's schema with
//! every request of every session, so each byte is paid on each turn: no `$schema`, no
//! `default`s (an optional argument is simply not required), and an optional value typed as
//! what it is when given.

use serde_json::{Map, Value};

/// Trims `schema` (a tool's input schema) in place.
pub fn lean(schema: &mut Map<String, Value>) {
    schema.remove("$schema");
    node(schema);
}

/// One schema node, and the nodes under it.
fn node(n: &mut Map<String, Value>) {
    n.remove("default");
    if let Some(Value::Array(types)) = n.get("type")
        && let [a, b] = types.as_slice()
        && (a == "null" || b == "null")
    {
        let kept = if a == "null" { b.clone() } else { a.clone() };
        n.insert("type".into(), kept);
    }
    for maps in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(m)) = n.get_mut(maps) {
            m.values_mut()
                .filter_map(Value::as_object_mut)
                .for_each(node);
        }
    }
    if let Some(Value::Object(items)) = n.get_mut("items") {
        node(items);
    }
    for list in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(a)) = n.get_mut(list) {
            a.iter_mut().filter_map(Value::as_object_mut).for_each(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn schemas_lose_what_the_model_does_not_need_and_keep_the_rest() {
        let mut s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "note": {"type": "string", "description": "d"},
                "context": {"type": ["string", "null"], "default": null},
                "blocking": {"type": "boolean", "default": false},
                "default": {"type": "string"},
                "tasks": {"type": "array", "items": {"$ref": "#/$defs/T"}}
            },
            "required": ["note"],
            "$defs": {"T": {"type": "object", "properties": {"x": {"type": ["null", "integer"], "default": 1}}}}
        });
        super::lean(s.as_object_mut().expect("object"));
        assert_eq!(
            s,
            json!({
                "type": "object",
                "properties": {
                    "note": {"type": "string", "description": "d"},
                    "context": {"type": "string"},
                    "blocking": {"type": "boolean"},
                    "default": {"type": "string"},
                    "tasks": {"type": "array", "items": {"$ref": "#/$defs/T"}}
                },
                "required": ["note"],
                "$defs": {"T": {"type": "object", "properties": {"x": {"type": "integer"}}}}
            })
        );
    }
}
