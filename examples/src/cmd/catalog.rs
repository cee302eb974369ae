//! `catalog`: every event and handler linked into the binary, as tables, as JSON or as an
//! AsyncAPI 3.0 document (see [`super::asyncapi`]).

use anyhow::Context as _;
use clap::Args;
use event_core::{registered_events, registered_handlers, Backoff, EventDescriptor, HandlerDescriptor};
use examples::components::Component;
use examples::event_types::DOMAINS;
use serde::Serialize;

use super::{format_duration, render_table, write_stdout};

/// Options of `catalog`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct CatalogArgs {
    /// Print JSON for machines instead of tables.
    #[arg(long, conflicts_with = "asyncapi")]
    json: bool,
    /// Print an AsyncAPI 3.0 document (JSON, which YAML tools read as well): one channel per
    /// stream, one message per event, one receive operation per handler, one send per event.
    #[arg(long)]
    asyncapi: bool,
    /// Only this domain's events and the handlers of those events.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Catalog {
    events: Vec<EventEntry>,
    handlers: Vec<HandlerEntry>,
}

#[derive(Debug, Serialize)]
struct EventEntry {
    name: &'static str,
    domain: &'static str,
    delivery: &'static str,
    stream: &'static str,
    version: u32,
    /// Full Rust path of the event type.
    #[serde(rename = "type")]
    type_name: &'static str,
    module: &'static str,
    fields: Vec<FieldEntry>,
}

#[derive(Debug, Serialize)]
struct FieldEntry {
    name: &'static str,
    #[serde(rename = "type")]
    type_name: &'static str,
}

/// Options are the ones written on the attribute; `null` means the dispatcher's default.
#[derive(Debug, Serialize)]
struct HandlerEntry {
    name: &'static str,
    module: &'static str,
    event: &'static str,
    event_type: &'static str,
    delivery: &'static str,
    /// Effective consumer group: the attribute's `group`, else the group of the component
    /// hosting the handler.
    group: Option<String>,
    component: Option<&'static str>,
    max_attempts: Option<u32>,
    backoff: Option<&'static str>,
    base_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    timeout_ms: Option<u64>,
    concurrency: Option<u32>,
}

pub(super) fn backoff_str(b: Backoff) -> &'static str {
    match b {
        Backoff::Fixed => "fixed",
        Backoff::Exponential => "exponential",
    }
}

fn millis(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn domain_rank(domain: &str) -> usize {
    DOMAINS.iter().position(|d| *d == domain).unwrap_or(DOMAINS.len())
}

/// The events, by domain (catalog order), then name, then delivery.
pub(super) fn events(domain: Option<&str>) -> Vec<&'static EventDescriptor> {
    let mut events: Vec<_> =
        registered_events().into_iter().filter(|e| domain.is_none_or(|d| e.info.domain == d)).collect();
    events.sort_by(|a, b| {
        (domain_rank(a.info.domain), a.info.domain, a.info.name, a.info.delivery).cmp(&(
            domain_rank(b.info.domain),
            b.info.domain,
            b.info.name,
            b.info.delivery,
        ))
    });
    events
}

/// The handlers, by component, then name.
pub(super) fn handlers(domain: Option<&str>) -> Vec<&'static HandlerDescriptor> {
    let rank = |h: &HandlerDescriptor| {
        Component::of_module(h.module_path)
            .and_then(|c| examples::components::COMPONENTS.iter().position(|x| *x == c))
            .unwrap_or(usize::MAX)
    };
    let mut handlers: Vec<_> =
        registered_handlers().into_iter().filter(|h| domain.is_none_or(|d| h.event.domain == d)).collect();
    handlers.sort_by(|a, b| (rank(a), a.module_path, a.name).cmp(&(rank(b), b.module_path, b.name)));
    handlers
}

/// The group a handler's entries are consumed by: its `group = ".."`, else the group of the
/// component hosting it; `None` when neither says (the dispatcher's group applies).
pub(super) fn effective_group(h: &HandlerDescriptor) -> Option<String> {
    h.options.group.or_else(|| Component::of_module(h.module_path).map(|c| c.group)).map(str::to_owned)
}

fn catalog(domain: Option<&str>) -> Catalog {
    Catalog {
        events: events(domain)
            .into_iter()
            .map(|e| EventEntry {
                name: e.info.name,
                domain: e.info.domain,
                delivery: e.info.delivery.as_str(),
                stream: e.info.stream,
                version: e.info.version,
                type_name: (e.info.type_name)(),
                module: e.module_path,
                fields: e.fields.iter().map(|(name, ty)| FieldEntry { name, type_name: ty }).collect(),
            })
            .collect(),
        handlers: handlers(domain)
            .into_iter()
            .map(|h| HandlerEntry {
                name: h.name,
                module: h.module_path,
                event: h.event.name,
                event_type: (h.event.type_name)(),
                delivery: h.event.delivery.as_str(),
                group: effective_group(h),
                component: Component::of_module(h.module_path).map(|c| c.name),
                max_attempts: h.options.max_attempts,
                backoff: h.options.backoff.map(backoff_str),
                base_delay_ms: millis(h.options.base_delay),
                max_delay_ms: millis(h.options.max_delay),
                timeout_ms: millis(h.options.timeout),
                concurrency: h.options.concurrency,
            })
            .collect(),
    }
}

/// The options written on a handler, as `key=value` pairs, or `defaults`.
fn options_text(h: &HandlerDescriptor) -> String {
    let o = &h.options;
    let mut parts = Vec::new();
    if let Some(g) = o.group {
        parts.push(format!("group={g}"));
    }
    if let Some(n) = o.max_attempts {
        parts.push(format!("max_attempts={n}"));
    }
    if let Some(b) = o.backoff {
        parts.push(format!("backoff={}", backoff_str(b)));
    }
    if let Some(d) = o.base_delay {
        parts.push(format!("base_delay={}", format_duration(d)));
    }
    if let Some(d) = o.max_delay {
        parts.push(format!("max_delay={}", format_duration(d)));
    }
    if let Some(d) = o.timeout {
        parts.push(format!("timeout={}", format_duration(d)));
    }
    if let Some(n) = o.concurrency {
        parts.push(format!("concurrency={n}"));
    }
    if parts.is_empty() {
        "defaults".to_owned()
    } else {
        parts.join(" ")
    }
}

fn tables(domain: Option<&str>) -> String {
    let mut out = String::new();
    let events = events(domain);
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.info.name.to_owned(),
                e.info.domain.to_owned(),
                e.info.delivery.as_str().to_owned(),
                e.info.stream.to_owned(),
                e.info.version.to_string(),
                e.type_ident.to_owned(),
            ]
        })
        .collect();
    let domains = {
        let mut d: Vec<&str> = events.iter().map(|e| e.info.domain).collect();
        d.dedup();
        d.len()
    };
    out.push_str(&format!("EVENTS ({} in {domains} domains)\n\n", events.len()));
    out.push_str(&render_table(&["NAME", "DOMAIN", "DELIVERY", "STREAM", "VERSION", "TYPE"], &rows));

    let handlers = handlers(domain);
    let rows: Vec<Vec<String>> = handlers
        .iter()
        .map(|h| {
            vec![
                h.name.to_owned(),
                Component::of_module(h.module_path).map_or("-", |c| c.name).to_owned(),
                h.event.name.to_owned(),
                h.event.delivery.as_str().to_owned(),
                effective_group(h).unwrap_or_else(|| "-".to_owned()),
                options_text(h),
            ]
        })
        .collect();
    out.push_str(&format!("\nHANDLERS ({})\n\n", handlers.len()));
    out.push_str(&render_table(&["NAME", "COMPONENT", "EVENT", "DELIVERY", "GROUP", "OPTIONS"], &rows));
    let d = event_core::RetryPolicy::default();
    out.push_str(&format!(
        "\nUnset options take the dispatcher's defaults (max_attempts {}, {} backoff {}..{}, no \
         timeout, concurrency 16). Retry options apply to anycast handlers only.\n",
        d.max_attempts,
        backoff_str(d.backoff),
        format_duration(d.base_delay),
        format_duration(d.max_delay),
    ));
    out
}

/// Runs `catalog`.
pub(crate) fn run(args: &CatalogArgs) -> anyhow::Result<()> {
    let domain = args.domain.as_deref();
    if let Some(d) = domain {
        anyhow::ensure!(DOMAINS.contains(&d), "unknown domain `{d}`; the domains are: {}", DOMAINS.join(", "));
    }
    let text = if args.asyncapi {
        let mut json = serde_json::to_string_pretty(&super::asyncapi::document(domain))?;
        json.push('\n');
        json
    } else if args.json {
        let mut json = serde_json::to_string_pretty(&catalog(domain))?;
        json.push('\n');
        json
    } else {
        tables(domain)
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        None => write_stdout(&text)?,
    }
    Ok(())
}
