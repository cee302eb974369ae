//! `catalog --asyncapi`: the AsyncAPI 3.0 document of the catalog, checked against the
//! registry, and (where node and npm are available) by the official AsyncAPI parser, which also
//! validates it against the AsyncAPI 3.0.0 JSON Schema of `@asyncapi/specs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use event_core::{registered_events, registered_handlers, Delivery, EventDescriptor};
// Links the catalog: its events and handlers register themselves with event-core.
use examples as _;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_event-examples")).args(args).output().expect("the binary runs")
}

fn document(args: &[&str]) -> Value {
    let output = run(args);
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the document is JSON")
}

fn asyncapi() -> Value {
    document(&["catalog", "--asyncapi"])
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves a local `$ref` (`#/a/b`): URI fragment, then RFC 6901 JSON pointer.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = reference.strip_prefix('#')?;
    doc.pointer(&percent_decode(fragment)?)
}

fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push((at.clone(), r)),
                    _ => refs(v, format!("{at}/{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn obj<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("{what} is not an object: {v}"))
}

fn type_name(e: &EventDescriptor) -> &'static str {
    (e.info.type_name)()
}

/// The component message of an event, found by its Rust type.
fn message_of<'a>(doc: &'a Value, rust_type: &str) -> (&'a str, &'a Value) {
    let found: Vec<_> = obj(&doc["components"]["messages"], "components.messages")
        .iter()
        .filter(|(_, m)| m["x-rust-type"] == rust_type)
        .collect();
    assert_eq!(found.len(), 1, "exactly one message for {rust_type}");
    (found[0].0.as_str(), found[0].1)
}

#[test]
fn asyncapi_document_has_the_3_0_shape() {
    let doc = asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let description = doc["info"]["description"].as_str().expect("info.description");
    assert!(description.contains("application/json"), "the JSON content type is mentioned");
    assert_eq!(doc["defaultContentType"], "application/msgpack");
    for key in obj(&doc, "the document").keys() {
        assert!(
            ["asyncapi", "info", "defaultContentType", "channels", "operations", "components"].contains(&key.as_str()),
            "unexpected top-level key `{key}`"
        );
    }
    for id in obj(&doc["channels"], "channels").keys() {
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "channel id `{id}` is not an identifier");
    }
    for id in obj(&doc["components"]["messages"], "components.messages").keys() {
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "message id `{id}` is not a component key"
        );
    }
    for (id, op) in obj(&doc["operations"], "operations") {
        assert!(matches!(op["action"].as_str(), Some("send" | "receive")), "{id}: action");
        assert!(op["channel"]["$ref"].is_string(), "{id}: channel reference");
    }
    let headers = &doc["components"]["schemas"]["EnvelopeHeaders"];
    let header_fields: BTreeSet<&str> =
        obj(&headers["properties"], "header properties").keys().map(String::as_str).collect();
    for field in ["v", "id", "name", "domain", "source", "ts", "attempt", "cid", "ct"] {
        assert!(header_fields.contains(field), "header field `{field}` is described");
    }
    let required: BTreeSet<&str> =
        headers["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert!(!required.contains("cid") && required.contains("ct") && required.contains("name"));
}

#[test]
fn every_ref_resolves_within_the_document() {
    let doc = asyncapi();
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 100, "a catalog document is full of references");
    for (at, reference) in &found {
        assert!(reference.starts_with("#/"), "{at}: `{reference}` is not a local reference");
        assert!(resolve(&doc, reference).is_some(), "{at}: `{reference}` does not resolve");
    }
    // An operation's messages are messages of its own channel.
    for (id, op) in obj(&doc["operations"], "operations") {
        let channel = op["channel"]["$ref"].as_str().expect("channel $ref");
        for m in op["messages"].as_array().expect("messages") {
            let m = m["$ref"].as_str().expect("message $ref");
            assert!(m.starts_with(&format!("{channel}/messages/")), "{id}: {m} is not under {channel}");
        }
    }
}

#[test]
fn every_event_has_a_message_and_channels_carry_exactly_their_events() {
    let doc = asyncapi();
    let events = registered_events();
    assert!(!events.is_empty());
    assert_eq!(obj(&doc["components"]["messages"], "messages").len(), events.len(), "one message per event");
    for e in &events {
        let (_, m) = message_of(&doc, type_name(e));
        assert_eq!(m["name"], e.info.name);
        assert_eq!(m["x-event-name"], e.info.name);
        assert_eq!(m["x-domain"], e.info.domain);
        assert_eq!(m["x-version"], e.info.version);
        assert_eq!(m["x-delivery"], e.info.delivery.as_str());
        let payload = &m["payload"];
        assert_eq!(payload["type"], "object", "{}", e.info.name);
        // (serde_json's map sorts keys; the document itself keeps declaration order.)
        let properties: BTreeSet<&str> =
            obj(&payload["properties"], "payload.properties").keys().map(String::as_str).collect();
        let fields: BTreeSet<&str> = e.fields.iter().map(|(name, _)| *name).collect();
        assert_eq!(properties, fields, "{}: a property per field", type_name(e));
        let required: Vec<&str> =
            payload["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
        let expected: Vec<&str> =
            e.fields.iter().filter(|(_, ty)| !ty.starts_with("Option<")).map(|(name, _)| *name).collect();
        assert_eq!(required, expected, "{}: required fields", type_name(e));
        for (name, ty) in e.fields {
            assert_eq!(payload["properties"][name]["x-rust-type"], *ty);
        }
    }

    let mut streams: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &events {
        streams.entry(e.info.stream).or_default().insert(type_name(e));
    }
    let channels = obj(&doc["channels"], "channels");
    assert_eq!(channels.len(), streams.len(), "one channel per stream");
    for (id, channel) in channels {
        let address = channel["address"].as_str().expect("address");
        let expected = streams.get(address).unwrap_or_else(|| panic!("channel {id}: no stream `{address}`"));
        let carried: BTreeSet<&str> = obj(&channel["messages"], "channel messages")
            .values()
            .map(|m| {
                let target = resolve(&doc, m["$ref"].as_str().expect("$ref")).expect("resolves");
                target["x-rust-type"].as_str().expect("x-rust-type")
            })
            .collect();
        assert_eq!(&carried, expected, "channel {id} carries exactly the events of `{address}`");
        assert!(channel["description"].as_str().is_some_and(|d| d.contains("nycast") || d.contains("roadcast")));
    }
    let kernel = channels
        .values()
        .find(|c| c["address"] == "events:{kernel}:broadcast")
        .expect("a channel for events:{kernel}:broadcast");
    assert_eq!(kernel["x-delivery"], "broadcast");
    assert_eq!(kernel["parameters"]["kernel"]["default"], "{kernel}", "the hash tag is literal");

    // One `send` per event, on the event's channel.
    let sends: Vec<&Value> =
        obj(&doc["operations"], "operations").values().filter(|op| op["action"] == "send").collect();
    assert_eq!(sends.len(), events.len());
    for e in &events {
        let send = sends.iter().find(|op| op["x-rust-type"] == type_name(e)).expect("a send operation");
        let channel = resolve(&doc, send["channel"]["$ref"].as_str().expect("$ref")).expect("resolves");
        assert_eq!(channel["address"], e.info.stream);
    }
}

#[test]
fn every_handler_has_a_receive_operation_on_its_stream() {
    let doc = asyncapi();
    let handlers = registered_handlers();
    assert!(!handlers.is_empty());
    let receives: Vec<(&String, &Value)> =
        obj(&doc["operations"], "operations").iter().filter(|(_, op)| op["action"] == "receive").collect();
    assert_eq!(receives.len(), handlers.len(), "one receive operation per handler");
    for h in &handlers {
        let (id, op) = receives
            .iter()
            .find(|(_, op)| op["x-handler"] == h.name && op["x-module"] == h.module_path)
            .unwrap_or_else(|| panic!("no operation for {}::{}", h.module_path, h.name));
        let channel = resolve(&doc, op["channel"]["$ref"].as_str().expect("$ref")).expect("channel resolves");
        assert_eq!(channel["address"], h.event.stream, "{id}: on its event's stream");
        let messages = op["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1);
        let message = resolve(&doc, messages[0]["$ref"].as_str().expect("$ref")).expect("message resolves");
        let message = match message.get("$ref").and_then(Value::as_str) {
            Some(r) => resolve(&doc, r).expect("component message resolves"),
            None => message,
        };
        assert_eq!(message["x-rust-type"], (h.event.type_name)(), "{id}: its event");
        assert_eq!(op["x-delivery"], h.event.delivery.as_str());
        assert!(op["x-options"].is_object(), "{id}: x-options");
        assert!(op.get("x-group").is_some(), "{id}: x-group");
        let prefix = id.split('.').next().unwrap_or_default();
        match h.event.delivery {
            Delivery::Broadcast => assert_eq!(prefix, "broadcast", "{id}"),
            Delivery::Anycast => assert_eq!(op["x-group"], prefix, "{id}"),
        }
        if let Some(group) = h.options.group {
            assert_eq!(op["x-group"], group, "{id}: the handler's own group wins");
            assert_eq!(op["x-options"]["group"], group);
        }
    }
    let ops = &doc["operations"];
    let clone = &ops["storage-proxy.clone_vfolder"];
    assert_eq!(clone["x-group"], "storage-proxy");
    assert_eq!(
        clone["x-options"],
        serde_json::json!({"max_attempts": 3, "backoff": "fixed", "base_delay": "20ms", "timeout": "30s", "concurrency": 4})
    );
    assert_eq!(ops["idle-checker.check_idle"]["x-group-source"], "handler");
    assert_eq!(ops["broadcast.destroy_session_kernels"]["x-delivery"], "broadcast");
}

#[test]
fn optional_and_byte_fields_are_described_truthfully() {
    let doc = asyncapi();
    let (_, done) = message_of(&doc, "examples::event_types::bgtask::BgtaskDoneEvent");
    let payload = &done["payload"];
    assert_eq!(payload["required"], serde_json::json!(["task_id"]));
    assert_eq!(payload["properties"]["task_id"]["type"], "string");
    assert_eq!(payload["properties"]["message"]["type"], serde_json::json!(["string", "null"]));

    // Any event with an `Option` field leaves it out of `required`.
    let with_option = registered_events()
        .into_iter()
        .find(|e| e.fields.iter().any(|(_, ty)| ty.starts_with("Option<")))
        .expect("an event with an Option field");
    let (_, m) = message_of(&doc, type_name(with_option));
    let required: BTreeSet<&str> =
        m["payload"]["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    for (name, ty) in with_option.fields {
        assert_eq!(required.contains(name), !ty.starts_with("Option<"), "{name}: {ty}");
    }

    // `Vec<u8>` is what serde writes: an array of integers 0..=255.
    let bytes = registered_events()
        .into_iter()
        .find_map(|e| e.fields.iter().find(|(_, ty)| *ty == "Vec<u8>").map(|(name, _)| (e, *name)));
    if let Some((e, field)) = bytes {
        let (_, m) = message_of(&doc, type_name(e));
        let schema = &m["payload"]["properties"][field];
        assert_eq!(schema["type"], "array");
        assert_eq!(schema["items"], serde_json::json!({"type": "integer", "minimum": 0, "maximum": 255}));
    }
    // Unsigned integers are not negative; a user-defined type names itself.
    let (_, heartbeat) = message_of(&doc, "examples::event_types::agent::AgentHeartbeatEvent");
    for (name, schema) in obj(&heartbeat["payload"]["properties"], "properties") {
        let rust = schema["x-rust-type"].as_str().unwrap_or_default();
        if rust.starts_with('u') {
            assert_eq!(schema["minimum"], 0, "{name}");
        }
    }
    let (_, terminated) = message_of(&doc, "examples::event_types::kernel::KernelTerminatedAnycastEvent");
    let reason = &terminated["payload"]["properties"]["reason"];
    assert!(reason["description"].as_str().is_some_and(|d| d.contains("KernelTerminationReason")), "{reason}");
}

#[test]
fn output_file_domain_filter_and_conflicts() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("asyncapi-output-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("catalog.asyncapi.json");
    let output = run(&["catalog", "--asyncapi", "--output", file.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty(), "with --output nothing goes to stdout");
    let written: Value = serde_json::from_slice(&std::fs::read(&file).expect("the file is written")).expect("JSON");
    assert_eq!(written, asyncapi());
    let _ = std::fs::remove_dir_all(&dir);

    let bgtask = document(&["catalog", "--asyncapi", "--domain", "bgtask"]);
    let channels = obj(&bgtask["channels"], "channels");
    assert!(!channels.is_empty());
    for channel in channels.values() {
        assert!(channel["address"].as_str().is_some_and(|a| a.contains("{bgtask}")), "{channel}");
    }
    for m in obj(&bgtask["components"]["messages"], "messages").values() {
        assert_eq!(m["x-domain"], "bgtask");
    }

    assert!(!run(&["catalog", "--asyncapi", "--json"]).status.success(), "one format at a time");
}

/// The official parser (`@asyncapi/parser`, which validates against the AsyncAPI 3.0.0 JSON
/// Schema of `@asyncapi/specs` and applies the specification's semantic rules) accepts the
/// document. Needs node and npm (and the npm registry for the first run); skipped with a message
/// otherwise, unless `ASYNCAPI_PARSER_REQUIRED=1`.
#[test]
fn official_asyncapi_parser_accepts_the_document() {
    const PARSER: &str = "@asyncapi/parser@3.6.3";
    let required = std::env::var("ASYNCAPI_PARSER_REQUIRED").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "ASYNCAPI_PARSER_REQUIRED=1 but {why}");
        eprintln!("SKIPPED official_asyncapi_parser_accepts_the_document: {why}");
    };
    let works = |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if !works("node") || !works("npm") {
        return skip("node and npm are not both installed".to_owned());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asyncapi-parser");
    if !dir.join("node_modules/@asyncapi/parser/package.json").exists() {
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]).arg(&dir).arg(PARSER);
        let install = output_within(npm, std::time::Duration::from_secs(300));
        match install {
            Ok(o) if o.status.success() => {}
            Ok(o) => return skip(format!("`npm install {PARSER}` failed: {}", String::from_utf8_lossy(&o.stderr))),
            Err(e) => return skip(format!("`npm install {PARSER}` did not run: {e}")),
        }
    }
    let doc_path = dir.join(format!("catalog-{}.json", std::process::id()));
    let output = run(&["catalog", "--asyncapi", "--output", doc_path.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let script = dir.join("validate.js");
    std::fs::write(
        &script,
        r#"const fs = require('fs');
const { Parser } = require('@asyncapi/parser');
(async () => {
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(process.argv[2], 'utf8'));
  const levels = ['error', 'warning', 'info', 'hint'];
  for (const d of diagnostics) {
    console.log(`${levels[d.severity]} ${d.code} at /${d.path.join('/')}: ${d.message}`);
  }
  process.exit(document && !diagnostics.some((d) => d.severity === 0) ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
"#,
    )
    .expect("script written");
    let mut node = Command::new("node");
    node.arg(&script).arg(&doc_path).current_dir(&dir);
    let checked = output_within(node, std::time::Duration::from_secs(120)).expect("node runs");
    let _ = std::fs::remove_file(&doc_path);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "the AsyncAPI parser rejects the document:\n{report}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let warnings: Vec<&str> = report.lines().filter(|l| l.starts_with("warning")).collect();
    assert!(warnings.is_empty(), "the AsyncAPI parser warns:\n{}", warnings.join("\n"));
}

/// Runs `cmd` to completion, or kills it after `limit` (an `Err` then): a test never hangs on
/// the network or a stuck child.
fn output_within(mut cmd: Command, limit: std::time::Duration) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no result within {limit:?}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
