//! Argument parsing shared by the macros: `key = value` lists, literal checks, durations,
//! names, and error accumulation.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, ToTokens};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit, LitStr, Path, Token};

/// Argument names, so that parsing and messages spell them one way.
pub(crate) mod kw {
    pub(crate) const DOMAIN: &str = "domain";
    pub(crate) const NAME: &str = "name";
    pub(crate) const STREAM: &str = "stream";
    pub(crate) const VERSION: &str = "version";
    pub(crate) const CRATE: &str = "crate";
    pub(crate) const GROUP: &str = "group";
    pub(crate) const MAX_ATTEMPTS: &str = "max_attempts";
    pub(crate) const BACKOFF: &str = "backoff";
    pub(crate) const BASE_DELAY: &str = "base_delay";
    pub(crate) const MAX_DELAY: &str = "max_delay";
    pub(crate) const TIMEOUT: &str = "timeout";
    pub(crate) const CONCURRENCY: &str = "concurrency";
}

/// Collects every error of one expansion, so the user sees them all at once.
#[derive(Default)]
pub(crate) struct Errors {
    inner: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.inner {
            Some(inner) => inner.combine(error),
            None => self.inner = Some(error),
        }
    }

    /// Keeps the value of `result`, or records its error.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.inner.map_or(Ok(()), Err)
    }
}

/// Stores the value of `result` in `slot`, or records its error; says whether it was valid.
pub(crate) fn set<T>(slot: &mut Option<T>, result: syn::Result<T>, errors: &mut Errors) -> bool {
    match result {
        Ok(value) => {
            *slot = Some(value);
            true
        }
        Err(e) => {
            errors.push(e);
            false
        }
    }
}

/// One `key = value` argument, checked against the macro's list of known keys.
pub(crate) struct Arg {
    /// The key, as one of the macro's known names.
    pub(crate) name: &'static str,
    /// The key's token, where errors about the argument as a whole point.
    pub(crate) key: Path,
    /// The value, parsed as an expression and checked by the caller.
    pub(crate) value: Expr,
}

/// Parses `key = value, ...`. Unknown, duplicated and valueless keys are recorded in `errors`
/// and skipped, so one pass reports all of them; a syntax error stops the parse.
pub(crate) fn parse_args(args: TokenStream, known: &[&'static str], errors: &mut Errors) -> Vec<Arg> {
    let mut parsed: Vec<Arg> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.clone();
        let ident = key.get_ident().map(ToString::to_string).unwrap_or_else(|| key_text(&key));
        let Some(&name) = known.iter().find(|k| **k == ident) else {
            errors.push(syn::Error::new_spanned(
                &key,
                format!("unknown argument `{ident}`; expected one of: {}", list(known)),
            ));
            return skip_value(&meta);
        };
        if !meta.input.peek(Token![=]) {
            errors.push(syn::Error::new_spanned(&key, format!("`{name}` needs a value: write `{name} = ...`")));
            return skip_value(&meta);
        }
        let value: Expr = meta.value()?.parse()?;
        if parsed.iter().any(|a| a.name == name) {
            errors.push(syn::Error::new_spanned(&key, format!("`{name}` is given more than once")));
        } else {
            parsed.push(Arg { name, key, value });
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        errors.push(e);
    }
    parsed
}

/// Consumes what follows an unusable key (`= expr` or `(...)`), so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

fn key_text(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// `` `a`, `b`, `c` ``.
fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The value of `arg` as a string literal.
pub(crate) fn lit_str(arg: &Arg) -> syn::Result<LitStr> {
    match &arg.value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{}` takes a string literal, e.g. `{} = \"...\"`", arg.name, arg.name),
        )),
    }
}

/// The value of `arg` as an integer literal that fits a `u32` and is at least `min`.
pub(crate) fn lit_u32(arg: &Arg, min: u32, example: u32) -> syn::Result<u32> {
    let Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) = &arg.value else {
        return Err(syn::Error::new_spanned(
            &arg.value,
            format!("`{}` takes an integer literal, e.g. `{} = {example}`", arg.name, arg.name),
        ));
    };
    let value: u32 = int.base10_parse().map_err(|_| {
        syn::Error::new_spanned(int, format!("`{}` must be an integer from {min} to {}", arg.name, u32::MAX))
    })?;
    if value < min {
        return Err(syn::Error::new_spanned(
            int,
            format!("`{}` must be at least {min}, e.g. `{} = {example}`", arg.name, arg.name),
        ));
    }
    Ok(value)
}

/// The value of `crate = "path"`: the path of the `event_core` facade.
pub(crate) fn crate_path(arg: &Arg) -> syn::Result<Path> {
    let lit = lit_str(arg)?;
    let path: Path = lit.parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid crate path `{}`: write the path of the `event_core` facade, e.g. `crate = \"::my_facade\"`",
                lit.to_token_stream()
            ),
        )
    })?;
    if path.segments.iter().any(|s| !s.arguments.is_none()) {
        return Err(syn::Error::new(lit.span(), "the crate path cannot have generic arguments"));
    }
    Ok(path)
}

/// The default facade path, `::event_core`.
pub(crate) fn default_crate_path() -> Path {
    syn::parse_quote!(::event_core)
}

/// `path` without spaces, for string attributes such as `#[serde(crate = "...")]`.
pub(crate) fn path_string(path: &Path) -> String {
    let mut out = String::new();
    if path.leading_colon.is_some() {
        out.push_str("::");
    }
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    out.push_str(&segments.join("::"));
    out
}

/// Whether `s` is a valid event name, domain, group or handler name: non-empty, made of
/// lowercase ASCII letters, digits, `_`, `.` and `-` (so safe in stream keys and metric labels).
pub(crate) fn is_identifier_like(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a name-like string argument (`name`, `domain`, `group`), with an example of a good one.
pub(crate) fn checked_name(arg: &Arg, what: &str, example: &str) -> syn::Result<LitStr> {
    let lit = lit_str(arg)?;
    if !is_identifier_like(&lit.value()) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "invalid {what} {}: use lowercase ASCII letters, digits, `_`, `.` or `-`, e.g. `{} = \"{example}\"`",
                show(&lit),
                arg.name
            ),
        ));
    }
    Ok(lit)
}

/// A string literal as written, between backticks.
pub(crate) fn show(lit: &LitStr) -> String {
    format!("`{}`", lit.to_token_stream())
}

/// A duration written `"250ms"`, `"10s"`, `"5m"` or `"1h"`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Millis(pub(crate) u64);

impl Millis {
    /// Parses `"<digits><unit>"` with unit `ms`, `s`, `m` or `h`.
    pub(crate) fn parse(text: &str) -> Option<Millis> {
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return None;
        }
        let factor = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        number.parse::<u64>().ok()?.checked_mul(factor).map(Millis)
    }

    /// `::core::time::Duration::from_secs(..)` when whole seconds, else `from_millis(..)`.
    fn to_duration_tokens(self) -> TokenStream {
        if self.0.is_multiple_of(1_000) {
            let secs = Literal::u64_unsuffixed(self.0 / 1_000);
            quote!(::core::time::Duration::from_secs(#secs))
        } else {
            let millis = Literal::u64_unsuffixed(self.0);
            quote!(::core::time::Duration::from_millis(#millis))
        }
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ms if ms > 0 && ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            ms if ms > 0 && ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            ms if ms > 0 && ms.is_multiple_of(1_000) => write!(f, "{}s", ms / 1_000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// A checked duration argument with the span of its literal.
#[derive(Clone, Copy)]
pub(crate) struct DurationArg {
    pub(crate) value: Millis,
    pub(crate) span: Span,
}

impl ToTokens for DurationArg {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.value.to_duration_tokens());
    }
}

/// The value of `arg` as a duration string.
pub(crate) fn duration(arg: &Arg) -> syn::Result<DurationArg> {
    let lit = lit_str(arg)?;
    let value = Millis::parse(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration {}: write a number followed by `ms`, `s`, `m` or `h`, e.g. `\"250ms\"`",
                show(&lit)
            ),
        )
    })?;
    Ok(DurationArg { value, span: lit.span() })
}

/// Re-spans every token of `tokens` (used to point an error at an argument rather than at the
/// type it checks).
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: TokenStream, known: &[&'static str]) -> (Vec<Arg>, Vec<String>) {
        let mut errors = Errors::default();
        let parsed = parse_args(args, known, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, messages)
    }

    const KNOWN: &[&str] = &[kw::DOMAIN, kw::NAME, kw::CRATE];

    #[test]
    fn parses_known_arguments() {
        let (args, errors) = parse(quote!(domain = "kernel", crate = "::facade"), KNOWN);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.len(), 2);
        assert_eq!(args[0].name, "domain");
        assert_eq!(lit_str(&args[0]).map(|l| l.value()).ok().as_deref(), Some("kernel"));
        assert_eq!(args[1].name, "crate");
        let path = crate_path(&args[1]).map(|p| path_string(&p)).ok();
        assert_eq!(path.as_deref(), Some("::facade"));
    }

    #[test]
    fn empty_arguments_are_fine() {
        let (args, errors) = parse(TokenStream::new(), KNOWN);
        assert!(args.is_empty() && errors.is_empty());
    }

    #[test]
    fn reports_every_unknown_duplicated_or_valueless_argument() {
        let (args, errors) =
            parse(quote!(domian = "kernel", domain = "a", domain = "b", name, list(a, b), name = "x"), KNOWN);
        assert_eq!(
            errors,
            [
                "unknown argument `domian`; expected one of: `domain`, `name`, `crate`",
                "`domain` is given more than once",
                "`name` needs a value: write `name = ...`",
                "unknown argument `list`; expected one of: `domain`, `name`, `crate`",
            ]
        );
        let names: Vec<_> = args.iter().map(|a| a.name).collect();
        assert_eq!(names, ["domain", "name"]);
    }

    #[test]
    fn syntax_errors_stop_the_parse() {
        let (_, errors) = parse(quote!("kernel"), KNOWN);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn literal_kinds_are_checked() {
        let (args, _) = parse(quote!(domain = 5, name = "x"), KNOWN);
        let err = lit_str(&args[0]).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("`domain` takes a string literal, e.g. `domain = \"...\"`"));
        let err = lit_u32(&args[1], 1, 3).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("`name` takes an integer literal, e.g. `name = 3`"));
    }

    #[test]
    fn integers_are_range_checked() {
        let known = &[kw::VERSION];
        let value = |tokens| {
            let (args, _) = parse(tokens, known);
            lit_u32(&args[0], 1, 2).map_err(|e| e.to_string())
        };
        assert_eq!(value(quote!(version = 7)), Ok(7));
        assert_eq!(value(quote!(version = 0)), Err("`version` must be at least 1, e.g. `version = 2`".into()));
        assert_eq!(
            value(quote!(version = 4294967296)),
            Err("`version` must be an integer from 1 to 4294967295".into())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(Millis::parse("250ms"), Some(Millis(250)));
        assert_eq!(Millis::parse("10s"), Some(Millis(10_000)));
        assert_eq!(Millis::parse("5m"), Some(Millis(300_000)));
        assert_eq!(Millis::parse("1h"), Some(Millis(3_600_000)));
        assert_eq!(Millis::parse("0ms"), Some(Millis(0)));
        for bad in [
            "",
            "10",
            "ms",
            "10 s",
            " 10s",
            "10S",
            "1.5s",
            "-1s",
            "1500us",
            "10 parsecs",
            "1d",
            "99999999999999999999h",
        ] {
            assert_eq!(Millis::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(120_000).to_string(), "2m");
        assert_eq!(Millis(0).to_string(), "0ms");
    }

    #[test]
    fn duration_tokens_pick_the_readable_unit() {
        let tokens = |ms| Millis(ms).to_duration_tokens().to_string();
        assert_eq!(tokens(100), ":: core :: time :: Duration :: from_millis (100)");
        assert_eq!(tokens(30_000), ":: core :: time :: Duration :: from_secs (30)");
    }

    #[test]
    fn bad_duration_message() {
        let (args, _) = parse(quote!(name = "10 parsecs"), KNOWN);
        let err = duration(&args[0]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid duration `\"10 parsecs\"`: write a number followed by `ms`, `s`, `m` or `h`, e.g. `\"250ms\"`"
            )
        );
    }

    #[test]
    fn names() {
        for good in ["kernel", "kernel_started", "v2.task-done", "0"] {
            assert!(is_identifier_like(good), "{good}");
        }
        for bad in ["", "Has Space", "Kernel", "a:b", "a,b", "{a}", "é", "a b"] {
            assert!(!is_identifier_like(bad), "{bad}");
        }
        let (args, _) = parse(quote!(name = "Has Space"), KNOWN);
        let err = checked_name(&args[0], "event name", "kernel_started").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid event name `\"Has Space\"`: use lowercase ASCII letters, digits, `_`, `.` or `-`, e.g. `name = \"kernel_started\"`"
            )
        );
    }

    #[test]
    fn crate_paths() {
        let (args, _) = parse(quote!(crate = "not a path"), KNOWN);
        assert!(crate_path(&args[0]).is_err());
        let (args, _) = parse(quote!(crate = "facade::events"), KNOWN);
        assert_eq!(crate_path(&args[0]).map(|p| path_string(&p)).ok().as_deref(), Some("facade::events"));
        assert_eq!(path_string(&default_crate_path()), "::event_core");
    }
}
