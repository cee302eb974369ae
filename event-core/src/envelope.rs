//! The envelope: one stream entry on the wire, and the payload codecs.
//!
//! Fields of an entry: `v` (format version), `id` (event UUID v7), `name`, `domain`, `source`,
//! `ts` (unix ms), `attempt`, `cid` (correlation id, optional), `ct` (content type, `msgpack` or
//! `json`), `data` (payload bytes). Retries and replays also carry `h`, the comma-separated
//! handlers still to run (absent: every handler of the group), and may carry `tp`, a W3C
//! `traceparent`.

use crate::Event;

thread_local! {
    /// Scratch space for encoding payloads (kept per thread, bounded by the largest payload).
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Current wire-format version, written in the `v` field.
pub const FORMAT_VERSION: u32 = 1;

/// Default largest accepted payload (`data` field), in bytes: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Payload encoding, written in the `ct` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentType {
    /// MessagePack with named fields (`msgpack`), the default.
    #[default]
    MsgPack,
    /// JSON (`json`).
    Json,
}

impl ContentType {
    /// The value written in the `ct` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::MsgPack => "msgpack",
            ContentType::Json => "json",
        }
    }

    /// Parses a `ct` field value.
    pub fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"msgpack" => Some(ContentType::MsgPack),
            b"json" => Some(ContentType::Json),
            _ => None,
        }
    }

    /// Serializes an event payload.
    pub fn encode<E: Event>(self, ev: &E) -> Result<Vec<u8>, String> {
        match self {
            ContentType::MsgPack => ENCODE_BUFFER.with(|buf| {
                // Encode into a reused buffer, then copy out exactly what was written: one
                // allocation of the right size instead of a growing one.
                let mut buf = buf.borrow_mut();
                buf.clear();
                let written = rmp_serde::encode::write_named(&mut *buf, ev).map_err(|e| e.to_string());
                let out = buf.as_slice().to_vec();
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new(); // do not keep a huge buffer after an outsized event
                }
                written.map(|()| out)
            }),
            ContentType::Json => serde_json::to_vec(ev).map_err(|e| e.to_string()),
        }
    }

    /// Deserializes an event payload.
    pub fn decode<E: Event>(self, data: &[u8]) -> Result<E, String> {
        match self {
            ContentType::MsgPack => rmp_serde::from_slice(data).map_err(|e| e.to_string()),
            ContentType::Json => serde_json::from_slice(data).map_err(|e| e.to_string()),
        }
    }
}

/// One event as stored in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Event id (UUID v7).
    pub id: String,
    /// Event name.
    pub name: String,
    /// Event domain.
    pub domain: String,
    /// Producer source id.
    pub source: String,
    /// Produce time, unix ms.
    pub ts: u64,
    /// Attempt this entry is for (1 on first delivery).
    pub attempt: u32,
    /// Correlation id.
    pub cid: Option<String>,
    /// Payload encoding.
    pub ct: ContentType,
    /// Payload bytes.
    pub data: Vec<u8>,
    /// Handlers still to run (retries and replays); `None`: every handler of the group.
    pub handlers: Option<Vec<String>>,
    /// W3C `traceparent` of the producing span, if any.
    pub traceparent: Option<String>,
}

/// One field value of an entry, borrowed from the envelope (see [`Envelope::for_each_field`]).
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    /// UTF-8 text.
    Text(&'a str),
    /// A decimal number.
    Number(u64),
    /// Raw bytes (the payload).
    Bytes(&'a [u8]),
    /// Handler names, written comma-separated.
    Handlers(&'a [String]),
}

impl FieldValue<'_> {
    /// The bytes written on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            FieldValue::Text(t) => t.as_bytes().to_vec(),
            FieldValue::Number(n) => n.to_string().into_bytes(),
            FieldValue::Bytes(b) => b.to_vec(),
            FieldValue::Handlers(h) => h.join(",").into_bytes(),
        }
    }
}

/// Why a stream entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong, for the dead letter and the logs.
    pub reason: String,
    /// The `name` field, when there was a readable one.
    pub name: Option<String>,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DecodeError {}

impl Envelope {
    /// Calls `f` with each field in wire order, without copying: what backends write.
    pub fn for_each_field(&self, mut f: impl FnMut(&'static str, FieldValue<'_>)) {
        f("v", FieldValue::Number(u64::from(FORMAT_VERSION)));
        f("id", FieldValue::Text(&self.id));
        f("name", FieldValue::Text(&self.name));
        f("domain", FieldValue::Text(&self.domain));
        f("source", FieldValue::Text(&self.source));
        f("ts", FieldValue::Number(self.ts));
        f("attempt", FieldValue::Number(u64::from(self.attempt)));
        if let Some(cid) = &self.cid {
            f("cid", FieldValue::Text(cid));
        }
        f("ct", FieldValue::Text(self.ct.as_str()));
        if let Some(h) = &self.handlers {
            f("h", FieldValue::Handlers(h));
        }
        if let Some(tp) = &self.traceparent {
            f("tp", FieldValue::Text(tp));
        }
        f("data", FieldValue::Bytes(&self.data));
    }

    /// The entry's fields in wire order, as `(name, value)` pairs.
    pub fn to_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::with_capacity(12);
        self.for_each_field(|k, v| out.push((k, v.to_bytes())));
        out
    }

    /// Decodes an entry from its fields. Every header field is required (`cid`, `h` and `tp`
    /// are optional); `data` must not exceed `max_payload` bytes. Unknown fields are ignored.
    pub fn from_fields<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        fields: &[(K, V)],
        max_payload: usize,
    ) -> Result<Envelope, DecodeError> {
        let checked = Checked::new(fields, max_payload)?;
        let text = |i: usize| checked.slot(fields, i).map(|v| String::from_utf8_lossy(v).into_owned());
        Ok(checked.build(
            |i| text(i).unwrap_or_default(),
            text,
            |i| checked.slot(fields, i).unwrap_or_default().to_vec(),
        ))
    }

    /// Like [`from_fields`](Self::from_fields), taking the fields: the text fields and the
    /// payload move into the envelope without copies (what a backend that already owns the
    /// reply's buffers wants). On failure the fields come back untouched, with the reason.
    #[allow(clippy::type_complexity)]
    pub fn from_owned_fields(
        mut fields: Vec<(Vec<u8>, Vec<u8>)>,
        max_payload: usize,
    ) -> Result<Envelope, (DecodeError, Vec<(Vec<u8>, Vec<u8>)>)> {
        let checked = match Checked::new(&fields, max_payload) {
            Ok(c) => c,
            Err(e) => return Err((e, fields)),
        };
        let slots = checked.slots;
        let fields = std::cell::RefCell::new(&mut fields);
        let take = |i: usize| -> Option<Vec<u8>> { slots[i].map(|at| std::mem::take(&mut fields.borrow_mut()[at].1)) };
        // Every text field was checked to be UTF-8, so these conversions do not fail.
        let text = |i: usize| take(i).map(|v| String::from_utf8(v).unwrap_or_default());
        Ok(checked.build(|i| text(i).unwrap_or_default(), text, |i| take(i).unwrap_or_default()))
    }

    /// The [`EventMeta`](crate::EventMeta) of this entry.
    pub fn meta(&self) -> crate::EventMeta {
        crate::EventMeta {
            id: self.id.clone(),
            name: self.name.clone(),
            domain: self.domain.clone(),
            source: self.source.clone(),
            timestamp_ms: self.ts,
            attempt: self.attempt,
            correlation_id: self.cid.clone(),
        }
    }
}

/// Milliseconds since the unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A fresh event id: a UUID v7 (time-ordered).
///
/// The 74 random bits come from the thread-local generator (no system call per id); ids made
/// in the same millisecond are unique but not ordered among themselves.
pub fn new_event_id() -> String {
    event_id_at(now_ms())
}

/// A fresh event id for an event produced at `ms` (unix milliseconds).
pub fn event_id_at(ms: u64) -> String {
    let random: [u8; 10] = rand::random();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

const FIELD_NAMES: [&str; 12] =
    ["v", "id", "name", "domain", "source", "ts", "attempt", "cid", "ct", "data", "h", "tp"];
const F_V: usize = 0;
const F_ID: usize = 1;
const F_NAME: usize = 2;
const F_DOMAIN: usize = 3;
const F_SOURCE: usize = 4;
const F_TS: usize = 5;
const F_ATTEMPT: usize = 6;
const F_CID: usize = 7;
const F_CT: usize = 8;
const F_DATA: usize = 9;
const F_H: usize = 10;
const F_TP: usize = 11;

/// The fields of an entry, located (one pass; the first of a repeated name wins) and checked:
/// everything but moving the values into an [`Envelope`].
struct Checked {
    slots: [Option<usize>; 12],
    ts: u64,
    attempt: u32,
    ct: ContentType,
}

impl Checked {
    fn new<K: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(K, V)], max_payload: usize) -> Result<Checked, DecodeError> {
        let mut slots: [Option<usize>; 12] = [None; 12];
        for (at, (k, _)) in fields.iter().enumerate() {
            if let Some(i) = FIELD_NAMES.iter().position(|n| n.as_bytes() == k.as_ref()) {
                slots[i].get_or_insert(at);
            }
        }
        let value = |i: usize| slots[i].map(|at| fields[at].1.as_ref());
        let name = value(F_NAME).and_then(|v| std::str::from_utf8(v).ok());
        let fail = |reason: String| DecodeError { reason, name: name.map(str::to_owned) };
        let text = |i: usize| -> Result<&str, DecodeError> {
            let v = value(i).ok_or_else(|| fail(format!("missing field `{}`", FIELD_NAMES[i])))?;
            std::str::from_utf8(v).map_err(|_| fail(format!("field `{}` is not UTF-8", FIELD_NAMES[i])))
        };
        let number = |i: usize| -> Result<u64, DecodeError> {
            text(i)?.parse::<u64>().map_err(|_| fail(format!("field `{}` is not a number", FIELD_NAMES[i])))
        };
        let v = number(F_V)?;
        if v != u64::from(FORMAT_VERSION) {
            return Err(fail(format!("unsupported format version {v}")));
        }
        let ct_raw = value(F_CT).ok_or_else(|| fail("missing field `ct`".into()))?;
        let ct = ContentType::parse(ct_raw)
            .ok_or_else(|| fail(format!("unknown content type `{}`", String::from_utf8_lossy(ct_raw))))?;
        let data = value(F_DATA).ok_or_else(|| fail("missing field `data`".into()))?;
        if data.len() > max_payload {
            return Err(fail(format!("payload of {} bytes is over the limit of {max_payload} bytes", data.len())));
        }
        if text(F_NAME)?.is_empty() {
            return Err(fail("empty field `name`".into()));
        }
        let attempt = number(F_ATTEMPT)?;
        let attempt =
            u32::try_from(attempt).ok().filter(|a| *a >= 1).ok_or_else(|| fail(format!("bad attempt {attempt}")))?;
        for i in [F_ID, F_DOMAIN, F_SOURCE] {
            text(i)?;
        }
        for i in [F_CID, F_H, F_TP] {
            if value(i).is_some() {
                text(i)?;
            }
        }
        Ok(Checked { slots, ts: number(F_TS)?, attempt, ct })
    }

    fn slot<'f, K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, fields: &'f [(K, V)], i: usize) -> Option<&'f [u8]> {
        self.slots[i].map(|at| fields[at].1.as_ref())
    }

    /// Builds the envelope from the checked fields: `text` for required text fields, `optional`
    /// for optional ones, `bytes` for the payload.
    fn build(
        &self,
        text: impl Fn(usize) -> String,
        optional: impl Fn(usize) -> Option<String>,
        bytes: impl Fn(usize) -> Vec<u8>,
    ) -> Envelope {
        Envelope {
            id: text(F_ID),
            name: text(F_NAME),
            domain: text(F_DOMAIN),
            source: text(F_SOURCE),
            ts: self.ts,
            attempt: self.attempt,
            cid: optional(F_CID),
            ct: self.ct,
            data: bytes(F_DATA),
            handlers: optional(F_H).map(|h| h.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()),
            traceparent: optional(F_TP),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: "0190b6c2-0000-7000-8000-000000000000".into(),
            name: "job".into(),
            domain: "d".into(),
            source: "s".into(),
            ts: 1_700_000_000_000,
            attempt: 2,
            cid: Some("c".into()),
            ct: ContentType::MsgPack,
            data: vec![1, 2, 3],
            handlers: Some(vec!["a".into(), "b".into()]),
            traceparent: None,
        }
    }

    fn owned(env: &Envelope) -> Vec<(Vec<u8>, Vec<u8>)> {
        env.to_fields().into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect()
    }

    #[test]
    fn owned_and_borrowed_decoding_agree() {
        let env = sample();
        let fields = owned(&env);
        assert_eq!(Envelope::from_fields(&fields, 1024).unwrap(), env);
        assert_eq!(Envelope::from_owned_fields(fields, 1024).unwrap(), env);
    }

    #[test]
    fn failed_owned_decoding_gives_the_fields_back() {
        let mut fields = owned(&sample());
        fields.retain(|(k, _)| k != b"ts");
        let before = fields.clone();
        let (err, back) = Envelope::from_owned_fields(fields, 1024).unwrap_err();
        assert_eq!(err.reason, "missing field `ts`");
        assert_eq!(err.name.as_deref(), Some("job"));
        assert_eq!(back, before);
        let (err, _) = Envelope::from_owned_fields(owned(&sample()), 2).unwrap_err();
        assert!(err.reason.contains("over the limit"), "{}", err.reason);
    }
}
