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
        const NAMES: [&str; 12] =
            ["v", "id", "name", "domain", "source", "ts", "attempt", "cid", "ct", "data", "h", "tp"];
        const V: usize = 0;
        const ID: usize = 1;
        const NAME: usize = 2;
        const DOMAIN: usize = 3;
        const SOURCE: usize = 4;
        const TS: usize = 5;
        const ATTEMPT: usize = 6;
        const CID: usize = 7;
        const CT: usize = 8;
        const DATA: usize = 9;
        const H: usize = 10;
        const TP: usize = 11;
        // One pass over the fields (the first of a repeated name wins), no allocation until the
        // envelope is built.
        let mut slots: [Option<&[u8]>; 12] = [None; 12];
        for (k, v) in fields {
            if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == k.as_ref()) {
                slots[i].get_or_insert(v.as_ref());
            }
        }
        let name = slots[NAME].and_then(|v| std::str::from_utf8(v).ok());
        let fail = |reason: String| DecodeError { reason, name: name.map(str::to_owned) };
        let text = |i: usize| -> Result<&str, DecodeError> {
            let v = slots[i].ok_or_else(|| fail(format!("missing field `{}`", NAMES[i])))?;
            std::str::from_utf8(v).map_err(|_| fail(format!("field `{}` is not UTF-8", NAMES[i])))
        };
        let number = |i: usize| -> Result<u64, DecodeError> {
            text(i)?.parse::<u64>().map_err(|_| fail(format!("field `{}` is not a number", NAMES[i])))
        };
        let optional = |i: usize| -> Result<Option<&str>, DecodeError> {
            match slots[i] {
                None => Ok(None),
                Some(_) => text(i).map(Some),
            }
        };
        let v = number(V)?;
        if v != u64::from(FORMAT_VERSION) {
            return Err(fail(format!("unsupported format version {v}")));
        }
        let ct_raw = slots[CT].ok_or_else(|| fail("missing field `ct`".into()))?;
        let ct = ContentType::parse(ct_raw)
            .ok_or_else(|| fail(format!("unknown content type `{}`", String::from_utf8_lossy(ct_raw))))?;
        let data = slots[DATA].ok_or_else(|| fail("missing field `data`".into()))?;
        if data.len() > max_payload {
            return Err(fail(format!("payload of {} bytes is over the limit of {max_payload} bytes", data.len())));
        }
        let event_name = text(NAME)?;
        if event_name.is_empty() {
            return Err(fail("empty field `name`".into()));
        }
        let attempt = number(ATTEMPT)?;
        let attempt =
            u32::try_from(attempt).ok().filter(|a| *a >= 1).ok_or_else(|| fail(format!("bad attempt {attempt}")))?;
        Ok(Envelope {
            id: text(ID)?.to_owned(),
            name: event_name.to_owned(),
            domain: text(DOMAIN)?.to_owned(),
            source: text(SOURCE)?.to_owned(),
            ts: number(TS)?,
            attempt,
            cid: optional(CID)?.map(str::to_owned),
            ct,
            data: data.to_vec(),
            handlers: optional(H)?.map(|h| h.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()),
            traceparent: optional(TP)?.map(str::to_owned),
        })
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
