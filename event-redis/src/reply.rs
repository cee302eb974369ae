//! Turning Redis replies into the queue's types.

use std::collections::HashMap;
use std::sync::Arc;

use event_core::queue::{DeadLetter, EntryBody, EntryId, StreamEntry};
use redis::Value;

use crate::{Error, Result};

fn bad(operation: &'static str, detail: impl Into<String>) -> Error {
    Error::Protocol { operation, detail: detail.into() }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => bytes(other).map(|b| String::from_utf8_lossy(b).into_owned()),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|t| t.parse::<f64>().ok()).map(|f| f as i64),
    }
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

fn entry_id(v: &Value, op: &'static str) -> Result<EntryId> {
    let t = text(v).ok_or_else(|| bad(op, "entry id is not a string"))?;
    EntryId::parse(&t).ok_or_else(|| bad(op, format!("bad entry id `{t}`")))
}

fn fields(v: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((bytes(k)?.to_vec(), bytes(v)?.to_vec())),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.iter().filter_map(|(k, v)| Some((bytes(k)?.to_vec(), bytes(v)?.to_vec()))).collect(),
        _ => Vec::new(),
    }
}

fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// Fields of an entry, moving the reply's buffers instead of copying them (the hot path).
fn fields_owned(v: Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let (Some(k), Some(v)) = (into_bytes(k), into_bytes(v)) {
                    out.push((k, v));
                }
            }
            out
        }
        Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((into_bytes(k)?, into_bytes(v)?))).collect(),
        _ => Vec::new(),
    }
}

/// Parses `[[id, [f, v, ...]], ...]` for one stream; entries without fields (deleted) are skipped.
fn entries_of(stream: &Arc<str>, v: Value, deliveries: u32, out: &mut Vec<StreamEntry>) -> Result<()> {
    let Value::Array(entries) = v else { return Ok(()) };
    out.reserve(entries.len());
    for e in entries {
        let Value::Array(parts) = e else { return Err(bad("XREAD", "entry is not an array")) };
        let mut parts = parts.into_iter();
        let (Some(id), Some(f)) = (parts.next(), parts.next()) else { continue };
        if matches!(f, Value::Nil) {
            continue;
        }
        let id = entry_id(&id, "XREAD")?;
        // Decode here, moving the reply's buffers into the envelope; an entry that does not
        // decode keeps its raw fields, and the dispatcher dead-letters it with the reason.
        let body = match event_core::envelope::Envelope::from_owned_fields(fields_owned(f), usize::MAX) {
            Ok(env) => EntryBody::Envelope(Arc::new(env)),
            Err((_, fields)) => EntryBody::Fields(fields),
        };
        out.push(StreamEntry { stream: stream.clone(), id, body, deliveries });
    }
    Ok(())
}

/// Parses an `XREAD`/`XREADGROUP` reply; `names` maps keys back to stream names.
pub(crate) fn stream_entries(names: &HashMap<Vec<u8>, Arc<str>>, v: Value) -> Result<Vec<StreamEntry>> {
    let mut out = Vec::new();
    let mut one = |key: Value, entries: Value| -> Result<()> {
        let key = bytes(&key).ok_or_else(|| bad("XREAD", "stream key is not a string"))?;
        let stream = names.get(key).ok_or_else(|| bad("XREAD", "reply for a stream that was not asked for"))?;
        entries_of(stream, entries, 1, &mut out)
    };
    match v {
        Value::Nil => {}
        Value::Map(pairs) => {
            for (k, e) in pairs {
                one(k, e)?;
            }
        }
        Value::Array(streams) => {
            for s in streams {
                let Value::Array(parts) = s else { return Err(bad("XREAD", "stream reply is not an array")) };
                let mut parts = parts.into_iter();
                if let (Some(k), Some(e)) = (parts.next(), parts.next()) {
                    one(k, e)?;
                }
            }
        }
        other => return Err(bad("XREAD", format!("unexpected reply {other:?}"))),
    }
    Ok(out)
}

fn counted_entries(stream: &Arc<str>, v: &Value, op: &'static str) -> Result<Vec<StreamEntry>> {
    let mut out = Vec::new();
    for e in array(v).unwrap_or_default() {
        let parts = array(e).ok_or_else(|| bad(op, "entry is not an array"))?;
        let [id, f, n] = parts else { return Err(bad(op, "entry is not {id, fields, count}")) };
        let deliveries = int(n).and_then(|n| u32::try_from(n).ok()).unwrap_or(1).max(1);
        out.push(StreamEntry {
            stream: stream.clone(),
            id: entry_id(id, op)?,
            body: EntryBody::Fields(fields(f)),
            deliveries,
        });
    }
    Ok(out)
}

/// `{last id | nil, {{id, fields, deliveries}...}}` from the pending re-read script.
pub(crate) fn claimed(stream: &Arc<str>, v: &Value) -> Result<Vec<StreamEntry>> {
    let parts = array(v).ok_or_else(|| bad("XREADGROUP (pending)", "reply is not an array"))?;
    match parts {
        [_, entries] => counted_entries(stream, entries, "XREADGROUP (pending)"),
        _ => Err(bad("XREADGROUP (pending)", "reply is not {last, entries}")),
    }
}

/// `{next cursor, {{id, fields, deliveries}...}}` from the claim script.
pub(crate) fn claim_result(stream: &Arc<str>, v: &Value) -> Result<(String, Vec<StreamEntry>)> {
    let parts = array(v).ok_or_else(|| bad("XAUTOCLAIM", "reply is not an array"))?;
    match parts {
        [cursor, entries] => {
            let cursor = text(cursor).unwrap_or_else(|| "0-0".to_owned());
            Ok((cursor, counted_entries(stream, entries, "XAUTOCLAIM")?))
        }
        _ => Err(bad("XAUTOCLAIM", "reply is not {cursor, entries}")),
    }
}

/// `{moved, next score | nil}` from the promote script.
pub(crate) fn promote_result(v: &Value) -> Result<(usize, Option<u64>)> {
    let parts = array(v).ok_or_else(|| bad("promote", "reply is not an array"))?;
    let moved = parts.first().and_then(int).unwrap_or(0);
    let next = parts.get(1).and_then(int).and_then(|n| u64::try_from(n).ok());
    Ok((usize::try_from(moved).unwrap_or(0), next))
}

/// Dead letters from an `XRANGE` of a dead-letter stream.
pub(crate) fn dead_letters(v: &Value, stream: &str, group: &str) -> Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for e in array(v).unwrap_or_default() {
        let parts = array(e).ok_or_else(|| bad("XRANGE", "entry is not an array"))?;
        let (Some(id), Some(f)) = (parts.first(), parts.get(1)) else { continue };
        let f = fields(f);
        let get = |k: &str| {
            f.iter()
                .find(|(n, _)| n == k.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        out.push(DeadLetter {
            id: text(id).unwrap_or_default(),
            event_name: get("name"),
            handler: get("dl_handler"),
            error: get("dl_error"),
            attempts: get("dl_attempts").parse().unwrap_or(0),
            stream: {
                let s = get("dl_stream");
                if s.is_empty() {
                    stream.to_owned()
                } else {
                    s
                }
            },
            group: {
                let g = get("dl_group");
                if g.is_empty() {
                    group.to_owned()
                } else {
                    g
                }
            },
            original_id: get("dl_oid"),
            event_id: get("id"),
            failed_at_ms: get("dl_ts").parse().unwrap_or(0),
        });
    }
    Ok(out)
}

/// The id of the single entry of an `XREVRANGE ... COUNT 1`, or `0-0`.
pub(crate) fn last_id(v: &Value) -> Result<EntryId> {
    match array(v).and_then(|a| a.first()).and_then(array).and_then(|e| e.first()) {
        Some(id) => entry_id(id, "XREVRANGE"),
        None => Ok(EntryId::ZERO),
    }
}

/// What the trim script reports.
pub(crate) struct TrimReport {
    pub(crate) capped: u64,
    pub(crate) groups: Vec<(String, i64, i64)>,
}

pub(crate) fn trim_report(v: &Value) -> Result<TrimReport> {
    let parts = array(v).ok_or_else(|| bad("trim", "reply is not an array"))?;
    let capped = parts.get(1).and_then(int).unwrap_or(0);
    let groups = parts
        .get(2)
        .and_then(array)
        .unwrap_or_default()
        .iter()
        .filter_map(|g| {
            let g = array(g)?;
            Some((text(g.first()?)?, int(g.get(1)?)?, int(g.get(2)?)?))
        })
        .collect();
    Ok(TrimReport { capped: u64::try_from(capped).unwrap_or(0), groups })
}

/// Group names from `XINFO GROUPS` (RESP2 flat arrays or RESP3 maps).
pub(crate) fn group_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = array(v)
        .unwrap_or_default()
        .iter()
        .filter_map(|g| match g {
            Value::Map(pairs) => pairs.iter().find(|(k, _)| bytes(k) == Some(b"name")).and_then(|(_, v)| text(v)),
            other => array(other)?
                .chunks(2)
                .find(|kv| bytes(&kv[0]) == Some(b"name"))
                .and_then(|kv| kv.get(1))
                .and_then(text),
        })
        .collect();
    names.sort();
    names
}
