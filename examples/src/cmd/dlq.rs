//! `dlq list | replay | purge`: dead-letter tooling over Redis, for every consumer group.
//!
//! The dead letters are those of the anycast streams of every event in the catalog (and of
//! `--stream`), in every consumer group reading them ([`DeadLetterAdmin`]).

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use event_core::{DeadLetter, DeadLetterAdmin, DeadLetterFilter};
use serde::Serialize;

use super::produce::progress_bar;
use super::{backend, render_table, write_stdout};

/// Options of `dlq`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum DlqCommand {
    /// List dead letters, the oldest first, as a table or as JSON.
    List(ListArgs),
    /// Put dead letters back for their group, with a fresh attempt budget (only the handler
    /// that gave up runs again).
    Replay(ReplayArgs),
    /// Remove dead letters for good (needs --yes).
    Purge(PurgeArgs),
}

/// Where to look: the server, and optionally one group and one stream.
#[derive(Debug, Clone, Args)]
struct Target {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/`.
    #[arg(long)]
    redis: String,
    /// Key prefix in Redis.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only the dead letters of this consumer group.
    #[arg(long)]
    group: Option<String>,
    /// Only the dead letters of this event stream (e.g. `events:{vfolder}:anycast`); also
    /// looks there when no event of the catalog uses it.
    #[arg(long)]
    stream: Option<String>,
}

impl Target {
    async fn admin(&self) -> anyhow::Result<DeadLetterAdmin> {
        let queue = backend::redis(&self.redis, &self.prefix).await?;
        let admin = DeadLetterAdmin::new(queue);
        Ok(match &self.stream {
            Some(s) => admin.stream(s.clone()),
            None => admin,
        })
    }

    fn filter(&self) -> DeadLetterFilter {
        let mut f = DeadLetterFilter::all();
        if let Some(g) = &self.group {
            f = f.group(g.clone());
        }
        if let Some(s) = &self.stream {
            f = f.stream(s.clone());
        }
        f
    }

    /// ` in group G on stream S`, or nothing.
    fn scope(&self) -> String {
        let mut out = String::new();
        if let Some(g) = &self.group {
            out.push_str(&format!(" in group {g}"));
        }
        if let Some(s) = &self.stream {
            out.push_str(&format!(" on stream {s}"));
        }
        out
    }
}

#[derive(Debug, Clone, Args)]
struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Show at most this many (the oldest).
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Debug, Clone, Args)]
struct ReplayArgs {
    #[command(flatten)]
    target: Target,
    /// Id of the dead letter (the ID column of `dlq list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Every dead letter (of `--group` / `--stream` if given).
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Clone, Args)]
struct PurgeArgs {
    #[command(flatten)]
    target: Target,
    /// Id of the dead letter (the ID column of `dlq list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Every dead letter (of `--group` / `--stream` if given).
    #[arg(long)]
    all: bool,
    /// Confirm: the dead letters are removed for good.
    #[arg(long)]
    yes: bool,
}

/// Runs `dlq`.
pub(crate) async fn run(args: DlqArgs) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::List(a) => list(a).await,
        DlqCommand::Replay(a) => replay(a).await,
        DlqCommand::Purge(a) => purge(a).await,
    }
}

/// One dead letter in `dlq list --json`.
#[derive(Debug, Serialize)]
struct JsonLetter<'a> {
    id: &'a str,
    stream: &'a str,
    group: &'a str,
    event_name: &'a str,
    event_id: &'a str,
    handler: &'a str,
    attempts: u32,
    error: &'a str,
    original_id: &'a str,
    failed_at_ms: u64,
    age_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `45s`, `3m12s`, `2h05m`, `3d04h`: how long ago, to the two largest units.
fn format_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The error on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let mut cut: String = line.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn table(letters: &[DeadLetter], now: u64) -> String {
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                or_dash(&d.event_name),
                d.group.clone(),
                or_dash(&d.handler),
                d.attempts.to_string(),
                format_age(now.saturating_sub(d.failed_at_ms)),
                one_line(&d.error, 80),
            ]
        })
        .collect();
    render_table(&["ID", "EVENT", "GROUP", "HANDLER", "ATTEMPTS", "AGE", "ERROR"], &rows)
}

/// `group a: 2, group b: 1`.
fn by_group(letters: &[DeadLetter]) -> String {
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for d in letters {
        *groups.entry(&d.group).or_default() += 1;
    }
    groups.iter().map(|(g, n)| format!("group {g}: {n}")).collect::<Vec<_>>().join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let admin = args.target.admin().await?;
    let letters = admin.list(&args.target.filter().limit(args.limit)).await?;
    let now = now_ms();
    if args.json {
        let docs: Vec<JsonLetter<'_>> = letters
            .iter()
            .map(|d| JsonLetter {
                id: &d.id,
                stream: &d.stream,
                group: &d.group,
                event_name: &d.event_name,
                event_id: &d.event_id,
                handler: &d.handler,
                attempts: d.attempts,
                error: &d.error,
                original_id: &d.original_id,
                failed_at_ms: d.failed_at_ms,
                age_ms: now.saturating_sub(d.failed_at_ms),
            })
            .collect();
        let mut json = serde_json::to_string_pretty(&docs)?;
        json.push('\n');
        write_stdout(&json)?;
        return Ok(());
    }
    if letters.is_empty() {
        write_stdout(&format!("no dead letters{}\n", args.target.scope()))?;
        return Ok(());
    }
    let mut out = table(&letters, now);
    if letters.len() == args.limit {
        out.push_str(&format!("\nthe oldest {} shown; `--limit N` shows more\n", args.limit));
    }
    write_stdout(&out)?;
    Ok(())
}

/// The one dead letter `id` names within the target, or an error saying why not.
async fn find_one(admin: &DeadLetterAdmin, target: &Target, id: &str) -> anyhow::Result<DeadLetter> {
    let mut found = admin.find(id, &target.filter()).await?;
    match found.len() {
        0 => anyhow::bail!("no dead letter with id {id}{}; `dlq list` shows them", target.scope()),
        1 => Ok(found.remove(0)),
        n => anyhow::bail!(
            "id {id} names {n} dead letters ({}); add --group and --stream to pick one",
            found.iter().map(|d| format!("group {} on {}", d.group, d.stream)).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn describe(d: &DeadLetter) -> String {
    format!("{} ({} in group {}, stream {})", d.id, or_dash(&d.event_name), d.group, d.stream)
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let admin = args.target.admin().await?;
    if let Some(id) = &args.id {
        let letter = find_one(&admin, &args.target, id).await?;
        admin.replay(&letter).await?;
        write_stdout(&format!("replayed dead letter {}\n", describe(&letter)))?;
        return Ok(());
    }
    let letters = admin.list(&args.target.filter()).await?;
    if letters.is_empty() {
        write_stdout(&format!("no dead letters to replay{}\n", args.target.scope()))?;
        return Ok(());
    }
    let bar = progress_bar(letters.len() as u64, "replaying");
    let replayed = admin.replay_many_with_progress(&letters, |done, _| bar.set_position(done as u64)).await;
    bar.finish_and_clear();
    write_stdout(&bulk_summary("replayed", replayed?, &letters))?;
    Ok(())
}

async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let admin = args.target.admin().await?;
    if let Some(id) = &args.id {
        let letter = find_one(&admin, &args.target, id).await?;
        anyhow::ensure!(
            args.yes,
            "refusing to purge dead letter {} without --yes: it would be removed for good; add --yes to confirm",
            describe(&letter)
        );
        let n = admin.purge(std::slice::from_ref(&letter)).await?;
        anyhow::ensure!(n == 1, "dead letter {id} was gone already (replayed or purged meanwhile)");
        write_stdout(&format!("purged dead letter {}\n", describe(&letter)))?;
        return Ok(());
    }
    let letters = admin.list(&args.target.filter()).await?;
    if letters.is_empty() {
        write_stdout(&format!("no dead letters to purge{}\n", args.target.scope()))?;
        return Ok(());
    }
    anyhow::ensure!(
        args.yes,
        "refusing to purge {} dead letter{} ({}) without --yes: they would be removed for good; add --yes to confirm",
        letters.len(),
        plural(letters.len()),
        by_group(&letters)
    );
    let bar = progress_bar(letters.len() as u64, "purging");
    let purged = admin.purge_with_progress(&letters, |done, _| bar.set_position(done as u64)).await;
    bar.finish_and_clear();
    write_stdout(&bulk_summary("purged", purged?, &letters))?;
    Ok(())
}

/// `<verb> N dead letters (by group)`, and how many of `letters` were gone already.
fn bulk_summary(verb: &str, done: usize, letters: &[DeadLetter]) -> String {
    let mut out = format!("{verb} {done} dead letter{} ({})\n", plural(done), by_group(letters));
    if done < letters.len() {
        out.push_str(&format!("{} were gone already (replayed or purged meanwhile)\n", letters.len() - done));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_durations() {
        assert_eq!(format_age(999), "0s");
        assert_eq!(format_age(45_000), "45s");
        assert_eq!(format_age(192_000), "3m12s");
        assert_eq!(format_age(2 * 3_600_000 + 5 * 60_000), "2h05m");
        assert_eq!(format_age(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }

    #[test]
    fn errors_fit_on_one_line() {
        assert_eq!(one_line("a\nb  c", 80), "a b c");
        assert_eq!(one_line(&"x".repeat(100), 10), "xxxxxxx...");
    }
}
