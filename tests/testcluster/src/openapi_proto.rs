//! `/openapi/v2` in protobuf, as kubectl before 1.27 asks for it (`Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) to validate manifests on the
//! client. The messages are the subset of gnostic's `openapi.v2` package (same field numbers)
//! that kubectl reads: definitions with their schemas and vendor extensions, and the paths with
//! each operation's id and extensions. Operation parameters and responses are left out.

use prost::Message;
use serde_json::{Map, Value};

/// The protobuf media type kubectl asks for in `Accept`.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The `Content-Type` of the protobuf answer: the real server lets Go's `http.ServeContent`
/// sniff it, which gives this (the `@` in `MEDIA_TYPE` is no valid media type for Go's parser).
pub const CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

/// The first media range in `Accept` that the v2 document is served as; `None` means 406.
/// An absent header means `*/*`.
pub fn negotiate(accept: &str) -> Option<Format> {
    let accept = if accept.trim().is_empty() { "*/*" } else { accept };
    accept.split(',').find_map(|clause| {
        let range = clause.split(';').next().unwrap_or_default().trim();
        match range {
            "application/json" | "application/*" | "*/*" => Some(Format::Json),
            MEDIA_TYPE => Some(Format::Protobuf),
            _ => None,
        }
    })
}

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// A value carried as YAML text (JSON is valid YAML), as gnostic's `Any` does.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

fn any(v: &Value) -> Any {
    Any { yaml: v.to_string() }
}

fn extensions(obj: &Map<String, Value>) -> Vec<NamedAny> {
    obj.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn named_schemas(v: &Value) -> Vec<NamedSchema> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(name, s)| NamedSchema {
                    name: name.clone(),
                    value: Some(schema(s)),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One JSON schema (already in its OpenAPI v2 form) as a gnostic `Schema`.
pub fn schema(v: &Value) -> Schema {
    let empty = Map::new();
    let o = v.as_object().unwrap_or(&empty);
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let float = |k: &str| o.get(k).and_then(Value::as_f64).unwrap_or_default();
    let int = |k: &str| o.get(k).and_then(Value::as_i64).unwrap_or_default();
    let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or_default();
    let strings = |k: &str| -> Vec<String> {
        match o.get(k) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    let additional_properties = o.get("additionalProperties").map(|a| {
        Box::new(AdditionalPropertiesItem {
            oneof: Some(match a {
                Value::Bool(b) => AdditionalProperties::Boolean(*b),
                s => AdditionalProperties::Schema(Box::new(schema(s))),
            }),
        })
    });
    let items = o.get("items").map(|i| ItemsItem {
        schema: match i {
            Value::Array(all) => all.iter().map(schema).collect(),
            one => vec![schema(one)],
        },
    });
    Schema {
        r#ref: text("$ref"),
        format: text("format"),
        title: text("title"),
        description: text("description"),
        default: o.get("default").map(any),
        multiple_of: float("multipleOf"),
        maximum: float("maximum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        minimum: float("minimum"),
        exclusive_minimum: flag("exclusiveMinimum"),
        max_length: int("maxLength"),
        min_length: int("minLength"),
        pattern: text("pattern"),
        max_items: int("maxItems"),
        min_items: int("minItems"),
        unique_items: flag("uniqueItems"),
        max_properties: int("maxProperties"),
        min_properties: int("minProperties"),
        required: strings("required"),
        r#enum: o
            .get("enum")
            .and_then(Value::as_array)
            .map(|e| e.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties,
        r#type: o.contains_key("type").then(|| TypeItem {
            value: strings("type"),
        }),
        items,
        properties: o.get("properties").map(|p| Properties {
            additional_properties: named_schemas(p),
        }),
        vendor_extension: extensions(o),
    }
}

fn operation(v: Option<&Value>) -> Option<Operation> {
    let o = v?.as_object()?;
    Some(Operation {
        operation_id: o
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        vendor_extension: extensions(o),
    })
}

/// The Swagger 2.0 JSON document as gnostic's protobuf `Document`, encoded.
pub fn encode(doc: &Value) -> Vec<u8> {
    let paths = doc["paths"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(name, item)| NamedPathItem {
                    name: name.clone(),
                    value: Some(PathItem {
                        get: operation(item.get("get")),
                        put: operation(item.get("put")),
                        post: operation(item.get("post")),
                        delete: operation(item.get("delete")),
                        patch: operation(item.get("patch")),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    Document {
        swagger: doc["swagger"].as_str().unwrap_or("2.0").into(),
        info: Some(Info {
            title: doc["info"]["title"].as_str().unwrap_or_default().into(),
            version: doc["info"]["version"].as_str().unwrap_or_default().into(),
        }),
        paths: Some(Paths { path: paths }),
        definitions: Some(Definitions {
            additional_properties: named_schemas(&doc["definitions"]),
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_survives_the_round_trip_through_protobuf() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/apis/example.dev/v1/gadgets": {"get": {"operationId": "listGadget", "x-kubernetes-action": "list"}}},
            "definitions": {"dev.example.v1.Gadget": {
                "type": "object",
                "required": ["spec"],
                "x-kubernetes-group-version-kind": [{"group": "example.dev", "version": "v1", "kind": "Gadget"}],
                "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 1, "format": "int64"},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    }},
                },
            }},
        });
        let decoded = Document::decode(encode(&doc).as_slice()).unwrap();
        assert_eq!(decoded.swagger, "2.0");
        let path = &decoded.paths.unwrap().path[0];
        assert_eq!(path.name, "/apis/example.dev/v1/gadgets");
        let get = path.value.as_ref().unwrap().get.as_ref().unwrap();
        assert_eq!(get.operation_id, "listGadget");
        assert_eq!(get.vendor_extension[0].value.as_ref().unwrap().yaml, "\"list\"");
        let def = &decoded.definitions.unwrap().additional_properties[0];
        assert_eq!(def.name, "dev.example.v1.Gadget");
        let gadget = def.value.as_ref().unwrap();
        assert_eq!(gadget.required, vec!["spec"]);
        assert_eq!(gadget.r#type.as_ref().unwrap().value, vec!["object"]);
        assert_eq!(gadget.vendor_extension[0].name, "x-kubernetes-group-version-kind");
        let spec = &gadget.properties.as_ref().unwrap().additional_properties[0];
        let fields = &spec
            .value
            .as_ref()
            .unwrap()
            .properties
            .as_ref()
            .unwrap()
            .additional_properties;
        let field = |n: &str| {
            fields
                .iter()
                .find(|f| f.name == n)
                .unwrap()
                .value
                .clone()
                .unwrap()
        };
        assert_eq!(
            (field("size").minimum, field("size").format.as_str()),
            (1.0, "int64")
        );
        assert_eq!(field("mode").r#enum.len(), 2);
        assert_eq!(
            field("tags").items.unwrap().schema[0]
                .r#type
                .as_ref()
                .unwrap()
                .value,
            vec!["string"]
        );
        match field("labels").additional_properties.unwrap().oneof.unwrap() {
            AdditionalProperties::Schema(s) => assert_eq!(s.r#type.unwrap().value, vec!["string"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_accept_header_picks_the_format() {
        assert_eq!(negotiate(MEDIA_TYPE), Some(Format::Protobuf));
        assert_eq!(
            negotiate(&format!("{MEDIA_TYPE}, application/json")),
            Some(Format::Protobuf)
        );
        assert_eq!(negotiate("application/json"), Some(Format::Json));
        assert_eq!(negotiate(""), Some(Format::Json));
        assert_eq!(negotiate("application/yaml, */*;q=0.5"), Some(Format::Json));
        assert_eq!(negotiate("application/yaml"), None);
    }
}
