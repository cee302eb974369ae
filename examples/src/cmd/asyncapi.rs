//! `catalog --asyncapi`: the catalog as an AsyncAPI 3.0 document, built from the compile-time
//! registry (`registered_events()` / `registered_handlers()`).
//!
//! - `channels`: one per stream key (`events:{kernel}:broadcast`), listing the events on it.
//! - `components.messages`: one per event, with the envelope's header fields as `headers` and a
//!   JSON Schema (draft-07, AsyncAPI's default schema format) of its fields as `payload`.
//! - `operations`: a `receive` per `#[handler]` and a `send` ("produce") per event.
//!
//! The document is JSON, which every YAML tool reads too. Objects keep their insertion order
//! (the catalog's order, fields in declaration order), so the output reads top-down and is
//! stable from one build to the next.

use std::any::TypeId;
use std::collections::{BTreeSet, HashMap};

use event_core::envelope::FORMAT_VERSION;
use event_core::{Delivery, EventInfo, HandlerDescriptor, RetryPolicy};
use examples::components::Component;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::catalog::{backoff_str, effective_group, events, handlers};
use super::format_duration;

/// The AsyncAPI version the document is written to.
pub(crate) const ASYNCAPI_VERSION: &str = "3.0.0";

// ---------------------------------------------------------------------------------------------
// An ordered JSON tree (serde_json's map sorts its keys).

/// A JSON value whose objects keep their insertion order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Obj),
}

/// A JSON object in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Obj(Vec<(String, Json)>);

impl Obj {
    fn new() -> Self {
        Obj::default()
    }

    /// Sets `key` (replacing an earlier value in place) and returns the object.
    fn with(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` when `value` is `Some`.
    fn with_opt<T: Into<Json>>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    fn insert(&mut self, key: &str, value: impl Into<Json>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Int(n) => serializer.serialize_i64(*n),
            Json::UInt(n) => serializer.serialize_u64(*n),
            Json::Str(s) => serializer.serialize_str(s),
            Json::Arr(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Obj(obj) => obj.serialize(serializer),
        }
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Json::Int(n)
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Self {
        Json::UInt(n.into())
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Json::UInt(n)
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Json::UInt(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

impl From<Obj> for Json {
    fn from(o: Obj) -> Self {
        Json::Obj(o)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(items: Vec<T>) -> Self {
        Json::Arr(items.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}

// ---------------------------------------------------------------------------------------------
// References and identifiers.

/// A local reference `#/a/b`: each segment escaped per RFC 6901 (`~` -> `~0`, `/` -> `~1`),
/// then percent-encoded where a URI fragment cannot hold the character (RFC 6901, section 6).
pub(crate) fn pointer(segments: &[&str]) -> String {
    let mut out = String::from("#");
    for segment in segments {
        out.push('/');
        let escaped = segment.replace('~', "~0").replace('/', "~1");
        for b in escaped.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@?".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// A Reference Object `{"$ref": "#/..."}`.
fn reference(segments: &[&str]) -> Obj {
    Obj::new().with("$ref", pointer(segments))
}

/// A channel id from a stream key: runs of anything but ASCII letters and digits become one `_`
/// (`events:{kernel}:broadcast` -> `events_kernel_broadcast`).
pub(crate) fn channel_id(stream: &str) -> String {
    let mut id = String::new();
    for c in stream.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    let id = id.trim_matches('_');
    if id.is_empty() {
        "stream".to_owned()
    } else {
        id.to_owned()
    }
}

/// A component key (`^[\w\d.\-_]+$` in AsyncAPI): other characters become `_`.
fn component_key(s: &str) -> String {
    let key: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if key.is_empty() {
        "_".to_owned()
    } else {
        key
    }
}

/// `base`, or `base<sep>2`, `base<sep>3`, ... whichever is not taken yet; marks it taken.
fn unique(base: String, sep: char, taken: &mut BTreeSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}{sep}{n}");
        n += 1;
    }
    id
}

// ---------------------------------------------------------------------------------------------
// Rust field types as JSON Schema.

/// Splits `s` at `sep` where it is not nested in `<>`, `()` or `[]`.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `path<args>` -> (`path`, the type arguments without lifetimes); `None` if it is not that shape.
fn split_generics(ty: &str) -> Option<(&str, Vec<&str>)> {
    let Some(open) = ty.find('<') else {
        return Some((ty, Vec::new()));
    };
    let inner = ty.strip_suffix('>')?.get(open + 1..)?;
    let path = &ty[..open];
    if path.is_empty() {
        return None; // `<T as Trait>::Assoc`
    }
    let args = split_top(inner, ',').into_iter().map(str::trim).filter(|a| !a.is_empty() && !a.starts_with('\''));
    Some((path, args.collect()))
}

fn typed(ty: &str) -> Obj {
    Obj::new().with("type", ty)
}

fn integer(name: &str) -> Option<Obj> {
    let (min, max): (Option<i64>, Option<i64>) = match name {
        "u8" => (Some(0), Some(0xff)),
        "u16" => (Some(0), Some(0xffff)),
        "u32" => (Some(0), Some(0xffff_ffff)),
        "u64" | "u128" | "usize" => (Some(0), None),
        "i8" => (Some(-0x80), Some(0x7f)),
        "i16" => (Some(-0x8000), Some(0x7fff)),
        "i32" => (Some(-0x8000_0000), Some(0x7fff_ffff)),
        "i64" | "i128" | "isize" => (None, None),
        _ => return None,
    };
    Some(typed("integer").with_opt("minimum", min).with_opt("maximum", max))
}

/// The schema of `schema` or `null`.
fn nullable(schema: Obj) -> Obj {
    match schema.get("type") {
        Some(Json::Str(t)) => {
            let t = t.clone();
            schema.with("type", vec![Json::Str(t), "null".into()])
        }
        Some(Json::Arr(types)) if types.contains(&"null".into()) => schema,
        Some(Json::Arr(types)) => {
            let mut types = types.clone();
            types.push("null".into());
            schema.with("type", types)
        }
        // An open schema (a type the registry does not describe) already admits null.
        None if !["anyOf", "oneOf", "allOf", "enum", "const", "not"].iter().any(|k| schema.get(k).is_some()) => schema,
        _ => Obj::new().with("anyOf", vec![schema, typed("null")]),
    }
}

fn array_of(items: Obj) -> Obj {
    typed("array").with("items", items)
}

/// The open schema of a type the registry cannot describe.
fn opaque(ty: &str) -> Obj {
    Obj::new().with(
        "description",
        format!("Rust type `{ty}`, written by its own serde implementation; its schema is not in the registry."),
    )
}

/// The JSON Schema of a Rust type as serde writes it (the same shape in MessagePack and JSON).
pub(crate) fn type_schema(ty: &str) -> Obj {
    let ty = ty.trim();
    if let Some(rest) = ty.strip_prefix('&') {
        // `&str`, `&'a str`, `&mut T`: what is behind the reference.
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('\'') {
            Some(r) => r.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_').trim_start(),
            None => rest,
        };
        let rest = rest.strip_prefix("mut ").unwrap_or(rest);
        return type_schema(rest);
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let parts = split_top(inner, ';');
        let mut schema = array_of(type_schema(parts[0]));
        if let Some(n) = parts.get(1).and_then(|n| n.trim().parse::<u64>().ok()) {
            schema = schema.with("minItems", n).with("maxItems", n);
        }
        return schema;
    }
    if let Some(inner) = ty.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<&str> = split_top(inner, ',').into_iter().map(str::trim).filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return typed("null");
        }
        let n = parts.len();
        return typed("array")
            .with("items", parts.into_iter().map(|p| Json::Obj(type_schema(p))).collect::<Vec<_>>())
            .with("minItems", n)
            .with("maxItems", n);
    }
    let Some((path, args)) = split_generics(ty) else {
        return opaque(ty);
    };
    let path = path.trim();
    let name = path.rsplit("::").next().unwrap_or(path).trim();
    if let ([], Some(schema)) = (args.as_slice(), integer(name)) {
        return schema;
    }
    match (name, args.as_slice()) {
        ("String" | "str", []) => typed("string"),
        ("char", []) => typed("string").with("minLength", 1u32).with("maxLength", 1u32),
        ("bool", []) => typed("boolean"),
        ("f32" | "f64", []) => typed("number"),
        ("Box" | "Arc" | "Rc" | "Cow", [inner]) => type_schema(inner),
        ("Option", [inner]) => nullable(type_schema(inner)),
        ("Vec" | "VecDeque" | "LinkedList" | "BinaryHeap", [inner]) => {
            let schema = array_of(type_schema(inner));
            if name == "Vec" && inner.trim() == "u8" {
                schema.with(
                    "description",
                    "Bytes: serde writes a `Vec<u8>` as a sequence, so this is an array of integers 0..=255 in \
                     MessagePack and JSON alike (not a binary or base64 string).",
                )
            } else {
                schema
            }
        }
        ("HashSet" | "BTreeSet" | "IndexSet", [inner]) => array_of(type_schema(inner)).with("uniqueItems", true),
        ("HashMap" | "BTreeMap" | "IndexMap", [key, value]) => {
            let schema = typed("object").with("additionalProperties", type_schema(value));
            let key = key.trim();
            if matches!(type_schema(key).get("type"), Some(Json::Str(t)) if t == "string") {
                schema
            } else {
                schema.with(
                    "description",
                    format!("A map keyed by `{key}`: JSON writes the keys as strings, MessagePack as `{key}` values."),
                )
            }
        }
        ("Value", []) if path.ends_with("serde_json::Value") => {
            Obj::new().with("description", "Any JSON value (`serde_json::Value`).")
        }
        _ => opaque(ty),
    }
}

/// The schema of a field and whether the field may be left out (`Option<T>`: serde reads a
/// missing field as `None`).
pub(crate) fn field_schema(ty: &str) -> (Obj, bool) {
    let optional = matches!(split_generics(ty.trim()), Some((path, args))
        if args.len() == 1 && path.trim().rsplit("::").next() == Some("Option"));
    (type_schema(ty), optional)
}

// ---------------------------------------------------------------------------------------------
// The document.

/// An event of the document: registered by an event macro, or only known from a handler.
#[derive(Debug, Clone, Copy)]
struct EventSpec {
    info: EventInfo,
    type_ident: Option<&'static str>,
    module_path: Option<&'static str>,
    fields: Option<&'static [(&'static str, &'static str)]>,
}

impl EventSpec {
    fn type_name(&self) -> &'static str {
        (self.info.type_name)()
    }

    fn title(&self) -> &'static str {
        self.type_ident.unwrap_or_else(|| self.type_name().rsplit("::").next().unwrap_or_default())
    }
}

fn delivery_text(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::Anycast => {
            "Anycast (task distribution): every consumer group (a service) reading this stream gets each \
             entry, and exactly one live instance of the group handles it. At-least-once: an entry is acked \
             only after its handler succeeded, failed attempts are retried with backoff, and after the last \
             attempt the entry is dead-lettered to `<stream>:dlq:<group>`."
        }
        Delivery::Broadcast => {
            "Broadcast (notification): every live subscriber reads the stream with its own cursor and handles \
             every entry. Best effort: a failure is logged and counted, never retried or dead-lettered. A \
             durable subscriber (`subscriber_name`) reads as consumer group `subscriber:<name>` and resumes \
             where it stopped."
        }
    }
}

/// The header fields of a stream entry (all but `data`), shared by every message.
fn envelope_headers() -> Obj {
    let text = |description: &str| typed("string").with("description", description);
    let properties = Obj::new()
        .with("v", text("Wire-format version.").with("const", FORMAT_VERSION.to_string()))
        .with("id", text("Event id, a UUID v7 (time-ordered), stable across retries.").with("format", "uuid"))
        .with(
            "name",
            text("Event name: with the stream's delivery mode, it selects the payload type.").with("minLength", 1u32),
        )
        .with("domain", text("Event domain."))
        .with("source", text("Source id of the producer, e.g. `manager-1`."))
        .with("ts", text("Produce time in unix milliseconds, in decimal.").with("pattern", "^[0-9]+$"))
        .with(
            "attempt",
            text("Attempt the entry is for, in decimal: `1` when produced, higher on retry entries.")
                .with("pattern", "^[1-9][0-9]*$"),
        )
        .with("cid", text("Correlation id (optional)."))
        .with(
            "ct",
            text(
                "Payload encoding of `data`: `msgpack` (application/msgpack: MessagePack with named fields, i.e. \
                 a map) or `json` (application/json: a JSON object of the same shape).",
            )
            .with("enum", vec!["msgpack", "json"])
            .with("default", "msgpack"),
        )
        .with("h", text("Only on retries and replays: comma-separated names of the handlers still to run."))
        .with("tp", text("W3C `traceparent` of the producing span (optional)."));
    typed("object")
        .with("title", "Stream entry header fields")
        .with(
            "description",
            "The fields of a stream entry besides `data`, which holds the payload. Redis stores every field \
             value as a byte string, so numbers are written in decimal. Unknown fields are ignored; an entry \
             missing a required field, or whose payload does not decode into the named event, is \
             dead-lettered as undecodable.",
        )
        .with("properties", properties)
        .with("required", vec!["v", "id", "name", "domain", "source", "ts", "attempt", "ct"])
}

/// The payload schema of an event, from its fields.
fn payload_schema(ev: &EventSpec) -> Obj {
    let schema = typed("object").with("title", ev.title());
    let Some(fields) = ev.fields else {
        return schema
            .with(
                "description",
                "The registry has no field list for this type (it was not declared with an event macro).",
            )
            .with("x-rust-type", ev.type_name());
    };
    let mut properties = Obj::new();
    let mut required = Vec::new();
    for (name, ty) in fields {
        let (schema, optional) = field_schema(ty);
        properties.insert(name, schema.with("x-rust-type", *ty));
        if !optional {
            required.push(*name);
        }
    }
    schema
        .with(
            "description",
            "The `data` field: the event's fields by name, a MessagePack map (`ct` msgpack) or a JSON object \
             (`ct` json). Unknown fields are ignored; an `Option` field may be null or left out.",
        )
        .with("properties", properties)
        .with("required", required)
        .with("x-rust-type", ev.type_name())
}

fn message(ev: &EventSpec) -> Obj {
    let info = &ev.info;
    let headers = typed("object").with("allOf", vec![reference(&["components", "schemas", "EnvelopeHeaders"])]).with(
        "properties",
        Obj::new()
            .with("name", Obj::new().with("const", info.name))
            .with("domain", Obj::new().with("const", info.domain)),
    );
    let mut tags = vec![Obj::new().with("name", info.domain)];
    if info.domain != info.delivery.as_str() {
        tags.push(Obj::new().with("name", info.delivery.as_str()));
    }
    Obj::new()
        .with("name", info.name)
        .with("title", ev.title())
        .with(
            "summary",
            format!("`{}` ({} event of domain `{}`, version {}).", info.name, info.delivery, info.domain, info.version),
        )
        .with(
            "description",
            format!(
                "Rust type `{}`, appended to stream `{}`. {}",
                ev.type_name(),
                info.stream,
                delivery_text(info.delivery)
            ),
        )
        .with("headers", headers)
        .with("payload", payload_schema(ev))
        .with("correlationId", reference(&["components", "correlationIds", "cid"]))
        .with("tags", tags)
        .with("x-event-name", info.name)
        .with("x-domain", info.domain)
        .with("x-version", info.version)
        .with("x-delivery", info.delivery.as_str())
        .with("x-stream", info.stream)
        .with("x-rust-type", ev.type_name())
        .with_opt("x-module", ev.module_path)
}

/// Channel parameters for the `{...}` parts of a stream key. AsyncAPI reads braces in an address
/// as a parameter, but in a stream key they are a Redis Cluster hash tag written literally: each
/// gets a parameter whose only value is the tag itself, braces included.
fn hash_tag_parameters(stream: &str) -> Option<Obj> {
    let mut params = Obj::new();
    let mut rest = stream;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + close];
        let literal = &rest[open..=open + close];
        if !name.is_empty() && params.get(name).is_none() {
            params.insert(
                name,
                Obj::new()
                    .with(
                        "description",
                        format!(
                            "Not a variable: `{literal}` is the Redis Cluster hash tag of the stream key, written \
                             literally (it keeps the stream's retry and dead-letter keys in one slot)."
                        ),
                    )
                    .with("enum", vec![literal])
                    .with("default", literal),
            );
        }
        rest = &rest[open + close + 1..];
    }
    (!params.is_empty()).then_some(params)
}

fn channel(stream: &str, events: &[(&str, &EventSpec)]) -> Obj {
    let deliveries: BTreeSet<Delivery> = events.iter().map(|(_, e)| e.info.delivery).collect();
    let domains: BTreeSet<&str> = events.iter().map(|(_, e)| e.info.domain).collect();
    let delivery = match deliveries.iter().collect::<Vec<_>>().as_slice() {
        [one] => one.as_str(),
        _ => "mixed",
    };
    let modes: Vec<&str> = deliveries.iter().map(|d| delivery_text(*d)).collect();
    let domain_list = domains.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ");
    let mut messages = Obj::new();
    for (id, _) in events {
        messages.insert(id, reference(&["components", "messages", id]));
    }
    Obj::new()
        .with("address", stream)
        .with("title", stream)
        .with("summary", format!("{} {delivery} event(s) of domain {domain_list}.", events.len()))
        .with(
            "description",
            format!(
                "{} The address is the Redis stream key, before any key prefix the queue is configured with. Each \
                 entry carries the header fields of its message's `headers` and the payload in field `data`.",
                modes.join(" ")
            ),
        )
        .with_opt("parameters", hash_tag_parameters(stream))
        .with("messages", messages)
        .with("tags", domains.iter().map(|d| Obj::new().with("name", *d)).collect::<Vec<_>>())
        .with("x-delivery", delivery)
}

/// The options written on a handler's attribute (unset ones are left out).
fn written_options(h: &HandlerDescriptor) -> Obj {
    let o = &h.options;
    let d = |d: Option<std::time::Duration>| d.map(format_duration);
    Obj::new()
        .with_opt("group", o.group)
        .with_opt("max_attempts", o.max_attempts)
        .with_opt("backoff", o.backoff.map(backoff_str))
        .with_opt("base_delay", d(o.base_delay))
        .with_opt("max_delay", d(o.max_delay))
        .with_opt("timeout", d(o.timeout))
        .with_opt("concurrency", o.concurrency)
}

fn receive_operation(h: &HandlerDescriptor, channel: &str, message: &str) -> Obj {
    let component = Component::of_module(h.module_path);
    let group = effective_group(h);
    let group_source = if h.options.group.is_some() {
        "handler"
    } else if component.is_some() {
        "component"
    } else {
        "dispatcher"
    };
    let event = h.event.name;
    let who = component.map_or_else(|| format!("`{}`", h.module_path), |c| format!("The {}", c.name));
    let defaults = RetryPolicy::default();
    let description = match h.event.delivery {
        Delivery::Anycast => {
            let group_text = group.as_deref().map_or_else(
                || "the consumer group of the dispatcher running it".to_owned(),
                |g| format!("consumer group `{g}`"),
            );
            let attempts = h.options.max_attempts.unwrap_or(defaults.max_attempts);
            format!(
                "Consumer: one instance of {group_text} runs `{}` for each `{event}`. At-least-once: acked after \
                 success, retried (up to {attempts} attempts{}), then dead-lettered to `{}:dlq:{}`.",
                h.name,
                if h.options.max_attempts.is_some() { "" } else { " unless the dispatcher changes its default" },
                h.event.stream,
                group.as_deref().unwrap_or("<group>"),
            )
        }
        Delivery::Broadcast => format!(
            "Subscriber: every live instance runs `{}` once for each `{event}`. Best effort: a failure is \
             logged and counted, never retried or dead-lettered.",
            h.name
        ),
    };
    let mut op = Obj::new()
        .with("action", "receive")
        .with("channel", reference(&["channels", channel]))
        .with("messages", vec![reference(&["channels", channel, "messages", message])])
        .with("title", h.name)
        .with("summary", format!("{who} handles `{event}` ({}).", h.event.delivery))
        .with("description", description)
        .with("x-handler", h.name)
        .with("x-module", h.module_path)
        .with("x-component", component.map(|c| c.name))
        .with("x-delivery", h.event.delivery.as_str())
        .with("x-group", group.clone())
        .with("x-group-source", group_source);
    if group.is_none() {
        op.insert(
            "x-group-note",
            "No `group` on the handler and no component: it joins the group of the dispatcher that runs it \
             (`EventDispatcher::builder(..).group(..)`, `default` unless set).",
        );
    }
    op.with("x-options", written_options(h))
}

fn send_operation(ev: &EventSpec, channel: &str, message: &str) -> Obj {
    Obj::new()
        .with("action", "send")
        .with("channel", reference(&["channels", channel]))
        .with("messages", vec![reference(&["channels", channel, "messages", message])])
        .with("title", format!("produce {}", ev.info.name))
        .with(
            "summary",
            format!("Produce `{}`: `EventProducer::produce` appends it to `{}`.", ev.info.name, ev.info.stream),
        )
        .with("x-event-name", ev.info.name)
        .with("x-delivery", ev.info.delivery.as_str())
        .with("x-rust-type", ev.type_name())
}

/// The events of the document: the registered ones (catalog order), then any event a handler
/// names that no event macro registered.
fn event_specs(domain: Option<&str>, handlers: &[&'static HandlerDescriptor]) -> Vec<EventSpec> {
    let mut specs: Vec<EventSpec> = events(domain)
        .into_iter()
        .map(|e| EventSpec {
            info: e.info,
            type_ident: Some(e.type_ident),
            module_path: Some(e.module_path),
            fields: Some(e.fields),
        })
        .collect();
    for h in handlers {
        if !specs.iter().any(|s| (s.info.type_id)() == (h.event.type_id)()) {
            specs.push(EventSpec { info: h.event, type_ident: None, module_path: None, fields: None });
        }
    }
    specs
}

/// The AsyncAPI 3.0 document of the catalog (of one domain with `domain`).
pub(crate) fn document(domain: Option<&str>) -> Json {
    let handlers = handlers(domain);
    let specs = event_specs(domain, &handlers);

    let mut taken = BTreeSet::new();
    let message_ids: Vec<String> = specs
        .iter()
        .map(|e| unique(component_key(&format!("{}.{}", e.info.name, e.info.delivery)), '-', &mut taken))
        .collect();
    let by_type: HashMap<TypeId, usize> = specs.iter().enumerate().map(|(i, e)| ((e.info.type_id)(), i)).collect();

    // Streams in the order their first event appears.
    let mut streams: Vec<&'static str> = Vec::new();
    for e in &specs {
        if !streams.contains(&e.info.stream) {
            streams.push(e.info.stream);
        }
    }
    let mut taken = BTreeSet::new();
    let channel_ids: HashMap<&str, String> =
        streams.iter().map(|s| (*s, unique(channel_id(s), '_', &mut taken))).collect();

    let mut channels = Obj::new();
    for stream in &streams {
        let on_stream: Vec<(&str, &EventSpec)> = specs
            .iter()
            .zip(&message_ids)
            .filter(|(e, _)| e.info.stream == *stream)
            .map(|(e, id)| (id.as_str(), e))
            .collect();
        channels.insert(&channel_ids[stream], channel(stream, &on_stream));
    }

    let mut operations = Obj::new();
    let mut taken = BTreeSet::new();
    for h in &handlers {
        let Some(&i) = by_type.get(&(h.event.type_id)()) else { continue };
        let prefix = match h.event.delivery {
            Delivery::Broadcast => "broadcast".to_owned(),
            Delivery::Anycast => effective_group(h).unwrap_or_else(|| "dispatcher".to_owned()),
        };
        let id = unique(component_key(&format!("{prefix}.{}", h.name)), '-', &mut taken);
        let channel = &channel_ids[specs[i].info.stream];
        operations.insert(&id, receive_operation(h, channel, &message_ids[i]));
    }
    for (e, message_id) in specs.iter().zip(&message_ids) {
        let id = unique(component_key(&format!("produce.{message_id}")), '-', &mut taken);
        operations.insert(&id, send_operation(e, &channel_ids[e.info.stream], message_id));
    }

    let mut messages = Obj::new();
    for (e, id) in specs.iter().zip(&message_ids) {
        messages.insert(id, message(e));
    }

    let scope = domain.map_or_else(String::new, |d| format!(" (domain `{d}` only)"));
    let info = Obj::new()
        .with("title", format!("event-examples event catalog{scope}"))
        .with("version", env!("CARGO_PKG_VERSION"))
        .with(
            "description",
            format!(
                "{}: the events and handlers linked into `event-examples`, generated by `event-examples catalog \
                 --asyncapi` from the compile-time registry (`event_core::registered_events()` and \
                 `registered_handlers()`): {} events on {} Redis streams, {} handlers.\n\n\
                 One channel per stream key; one message per event, its `headers` the entry's header fields and \
                 its `payload` a JSON Schema (draft-07) of the event's fields; one `receive` operation per \
                 handler and one `send` operation per event. Payloads are MessagePack maps with named fields \
                 (`application/msgpack`, the default); an entry whose `ct` field is `json` carries a JSON object \
                 of the same shape (`application/json`). A field of a user-defined type has an open schema \
                 naming its Rust type.",
                env!("CARGO_PKG_DESCRIPTION"),
                specs.len(),
                streams.len(),
                handlers.len(),
            ),
        );

    let components = Obj::new()
        .with("messages", messages)
        .with("schemas", Obj::new().with("EnvelopeHeaders", envelope_headers()))
        .with(
            "correlationIds",
            Obj::new().with(
                "cid",
                Obj::new()
                    .with("description", "The correlation id of the entry, when the producer set one.")
                    .with("location", "$message.header#/cid"),
            ),
        );

    Json::Obj(
        Obj::new()
            .with("asyncapi", ASYNCAPI_VERSION)
            .with("info", info)
            .with("defaultContentType", "application/msgpack")
            .with("channels", channels)
            .with("operations", operations)
            .with("components", components),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(o: Obj) -> serde_json::Value {
        serde_json::to_value(Json::Obj(o)).unwrap_or_default()
    }

    #[test]
    fn rust_types_map_to_json_schema() {
        let cases = [
            ("String", serde_json::json!({"type": "string"})),
            ("&'static str", serde_json::json!({"type": "string"})),
            ("u64", serde_json::json!({"type": "integer", "minimum": 0})),
            ("u8", serde_json::json!({"type": "integer", "minimum": 0, "maximum": 255})),
            ("i32", serde_json::json!({"type": "integer", "minimum": -2_147_483_648_i64, "maximum": 2_147_483_647})),
            ("i64", serde_json::json!({"type": "integer"})),
            ("f64", serde_json::json!({"type": "number"})),
            ("bool", serde_json::json!({"type": "boolean"})),
            (
                "Option<i32>",
                serde_json::json!({"type": ["integer", "null"], "minimum": -2_147_483_648_i64, "maximum": 2_147_483_647}),
            ),
            ("Vec<String>", serde_json::json!({"type": "array", "items": {"type": "string"}})),
            (
                "std::collections::BTreeSet<u32>",
                serde_json::json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64}, "uniqueItems": true}),
            ),
            (
                "HashMap<String, Vec<bool>>",
                serde_json::json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "boolean"}}}),
            ),
            (
                "Option<Vec<Option<String>>>",
                serde_json::json!({"type": ["array", "null"], "items": {"type": ["string", "null"]}}),
            ),
            (
                "(u8, String)",
                serde_json::json!({"type": "array", "items": [{"type": "integer", "minimum": 0, "maximum": 255}, {"type": "string"}], "minItems": 2, "maxItems": 2}),
            ),
            ("Box<str>", serde_json::json!({"type": "string"})),
            ("Cow<'a, str>", serde_json::json!({"type": "string"})),
        ];
        for (ty, expected) in cases {
            assert_eq!(json(type_schema(ty)), expected, "{ty}");
        }
        let bytes = json(type_schema("Vec<u8>"));
        assert_eq!(bytes["type"], "array");
        assert_eq!(bytes["items"], serde_json::json!({"type": "integer", "minimum": 0, "maximum": 255}));
        let nested = json(type_schema("Vec<RouteTarget>"));
        assert!(nested["items"]["description"].as_str().is_some_and(|d| d.contains("`RouteTarget`")));
        assert_eq!(json(type_schema("AgentStatus")).as_object().map(|o| o.len()), Some(1), "open schema");
        // An open schema admits null already; a nullable one keeps its keywords.
        assert_eq!(json(type_schema("Option<AgentStatus>")), json(type_schema("AgentStatus")));
        assert_eq!(
            json(type_schema("<T as Trait>::Assoc"))["description"].as_str().map(|d| d.contains("Assoc")),
            Some(true)
        );
    }

    #[test]
    fn options_are_not_required() {
        assert!(field_schema("Option<String>").1);
        assert!(field_schema("std::option::Option<u64>").1);
        assert!(!field_schema("Vec<Option<String>>").1);
        assert!(!field_schema("String").1);
    }

    #[test]
    fn pointers_escape_per_rfc_6901() {
        assert_eq!(pointer(&["components", "messages", "a.b"]), "#/components/messages/a.b");
        assert_eq!(pointer(&["channels", "a/b~c"]), "#/channels/a~1b~0c");
        assert_eq!(pointer(&["x", "{k} %"]), "#/x/%7Bk%7D%20%25");
    }

    #[test]
    fn channel_ids_are_identifiers() {
        assert_eq!(channel_id("events:{kernel}:broadcast"), "events_kernel_broadcast");
        assert_eq!(channel_id("events:{model_serving}:anycast"), "events_model_serving_anycast");
        assert_eq!(channel_id("::"), "stream");
        let mut taken = BTreeSet::new();
        assert_eq!(unique("a".into(), '_', &mut taken), "a");
        assert_eq!(unique("a".into(), '_', &mut taken), "a_2");
    }

    #[test]
    fn hash_tags_become_literal_parameters() {
        let params = json(hash_tag_parameters("events:{kernel}:broadcast").unwrap_or_default());
        assert_eq!(params["kernel"]["enum"], serde_json::json!(["{kernel}"]));
        assert_eq!(params["kernel"]["default"], "{kernel}");
        assert!(hash_tag_parameters("plain:stream").is_none());
    }

    #[test]
    fn objects_keep_their_order() {
        let text = serde_json::to_string(&Json::Obj(Obj::new().with("z", 1u32).with("a", 2u32).with("z", 3u32)))
            .unwrap_or_default();
        assert_eq!(text, r#"{"z":3,"a":2}"#);
    }
}
