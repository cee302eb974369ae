//! `#[broadcast_event]` and `#[anycast_event]`: one implementation, told apart by [`Kind`].

use proc_macro2::{Delimiter, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::{Fields, Ident, Item, ItemStruct, LitStr, Path};

use crate::attr::{self, kw, Errors};

/// Which event macro is expanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Broadcast,
    Anycast,
}

impl Kind {
    fn macro_name(self) -> &'static str {
        match self {
            Kind::Broadcast => "broadcast_event",
            Kind::Anycast => "anycast_event",
        }
    }

    /// `broadcast` / `anycast`: the suffix of the default stream name.
    fn delivery(self) -> &'static str {
        match self {
            Kind::Broadcast => "broadcast",
            Kind::Anycast => "anycast",
        }
    }

    fn delivery_variant(self) -> Ident {
        match self {
            Kind::Broadcast => format_ident!("Broadcast"),
            Kind::Anycast => format_ident!("Anycast"),
        }
    }

    fn marker_trait(self) -> Ident {
        match self {
            Kind::Broadcast => format_ident!("BroadcastEvent"),
            Kind::Anycast => format_ident!("AnycastEvent"),
        }
    }
}

const KNOWN: &[&str] = &[kw::DOMAIN, kw::NAME, kw::STREAM, kw::VERSION, kw::CRATE];

/// Struct-name suffixes dropped from the default event name, longest first.
const SUFFIXES: &[&str] = &["BroadcastEvent", "AnycastEvent", "Event"];

/// The checked arguments of an event macro.
struct EventArgs {
    domain: LitStr,
    name: Option<LitStr>,
    stream: Option<LitStr>,
    version: u32,
    krate: Path,
}

/// Expands `#[broadcast_event(args)]` / `#[anycast_event(args)]` on `item`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = parse_args(kind, args, &mut errors);
    let item = errors.ok(syn::parse2::<Item>(item));
    let strukt = item.and_then(|item| errors.ok(check_item(kind, item)));
    let name = strukt.as_ref().and_then(|s| {
        let name = args.as_ref().and_then(|a| a.name.clone());
        errors.ok(event_name(&s.ident, name))
    });
    errors.finish()?;
    match (args, strukt, name) {
        (Some(args), Some(strukt), Some(name)) => Ok(generate(kind, &args, strukt, &name)),
        // Every `None` above recorded an error, so `finish` returned it.
        _ => Err(syn::Error::new(Span::call_site(), "invalid event declaration")),
    }
}

fn parse_args(kind: Kind, args: TokenStream, errors: &mut Errors) -> Option<EventArgs> {
    let mut domain = None;
    let mut domain_given = false;
    let mut name = None;
    let mut stream = None;
    let mut version = None;
    let mut krate = None;
    let mut valid = true;
    for arg in attr::parse_args(args, KNOWN, errors) {
        valid &= match arg.name {
            kw::DOMAIN => {
                domain_given = true;
                attr::set(&mut domain, attr::checked_name(&arg, "domain", "kernel"), errors)
            }
            kw::NAME => attr::set(&mut name, attr::checked_name(&arg, "event name", "kernel_started"), errors),
            kw::STREAM => attr::set(&mut stream, check_stream(&arg), errors),
            kw::VERSION => attr::set(&mut version, attr::lit_u32(&arg, 1, 2), errors),
            kw::CRATE => attr::set(&mut krate, attr::crate_path(&arg), errors),
            _ => unreachable!("`parse_args` only returns known arguments"),
        };
    }
    if !domain_given {
        valid = false;
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("missing `domain`: add `domain = \"...\"`, e.g. `#[{}(domain = \"kernel\")]`", kind.macro_name()),
        ));
    }
    if !valid {
        return None;
    }
    Some(EventArgs {
        domain: domain?,
        name,
        stream,
        version: version.unwrap_or(1),
        krate: krate.unwrap_or_else(attr::default_crate_path),
    })
}

fn check_stream(arg: &attr::Arg) -> syn::Result<LitStr> {
    let lit = attr::lit_str(arg)?;
    let value = lit.value();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "invalid stream {}: write a non-empty name without whitespace, e.g. `stream = \"events:{{kernel}}:broadcast\"`",
                attr::show(&lit)
            ),
        ));
    }
    Ok(lit)
}

/// Checks that the item is a non-generic struct with named fields.
fn check_item(kind: Kind, item: Item) -> syn::Result<ItemStruct> {
    let macro_name = kind.macro_name();
    let strukt = match item {
        Item::Struct(s) => s,
        Item::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                format!(
                    "`#[{macro_name}]` goes on a struct with named fields, not an enum; put the enum in a field of an event struct, e.g. `struct MyEvent {{ value: {} }}`",
                    e.ident
                ),
            ));
        }
        Item::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                format!("`#[{macro_name}]` goes on a struct with named fields, not a union"),
            ));
        }
        other => {
            return Err(syn::Error::new(
                first_token_span(&other),
                format!("`#[{macro_name}]` goes on a struct with named fields, e.g. `struct KernelStarted {{ kernel_id: String }}`"),
            ));
        }
    };
    let mut errors = Errors::default();
    if !strukt.generics.params.is_empty() || strukt.generics.where_clause.is_some() {
        let generics = &strukt.generics;
        let where_clause = &generics.where_clause;
        errors.push(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            "event types cannot be generic: an event has one name and one payload schema; declare one struct per payload type",
        ));
    }
    match &strukt.fields {
        Fields::Named(_) => {}
        Fields::Unnamed(fields) => errors.push(syn::Error::new_spanned(
            fields,
            format!(
                "event fields must be named, so the payload can evolve: write `struct {} {{ field: Type }}`",
                strukt.ident
            ),
        )),
        Fields::Unit => errors.push(syn::Error::new_spanned(
            strukt.semi_token,
            format!("an event needs braces so fields can be added later: write `struct {} {{}}`", strukt.ident),
        )),
    }
    for attribute in &strukt.attrs {
        if attribute.path().is_ident("derive") {
            let _ = attribute.parse_nested_meta(|meta| {
                if let Some(last) = meta.path.segments.last() {
                    if last.ident == "Serialize" || last.ident == "Deserialize" {
                        errors.push(syn::Error::new_spanned(
                            &meta.path,
                            format!("remove `{}`: `#[{macro_name}]` derives it", last.ident),
                        ));
                    }
                }
                Ok(())
            });
        }
    }
    errors.finish()?;
    Ok(strukt)
}

fn first_token_span(item: &Item) -> Span {
    item.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

/// The event name: the `name` argument, or the struct name in snake case without its
/// `BroadcastEvent` / `AnycastEvent` / `Event` suffix.
fn event_name(ident: &Ident, name: Option<LitStr>) -> syn::Result<LitStr> {
    if let Some(name) = name {
        return Ok(name);
    }
    let derived = default_name(&ident.unraw().to_string());
    if !attr::is_identifier_like(&derived) {
        return Err(syn::Error::new_spanned(
            ident,
            format!(
                "cannot derive an event name from `{ident}` (it would be `{derived}`): add `name = \"...\"` with lowercase ASCII letters, digits, `_`, `.` or `-`"
            ),
        ));
    }
    Ok(LitStr::new(&derived, ident.span()))
}

/// `KernelStartedBroadcastEvent` -> `kernel_started`, `HTTPCallEvent` -> `http_call`.
/// The suffix is kept when it is the whole name (`Event` -> `event`).
pub(crate) fn default_name(ident: &str) -> String {
    let stem =
        SUFFIXES.iter().find_map(|suffix| ident.strip_suffix(suffix).filter(|stem| !stem.is_empty())).unwrap_or(ident);
    snake_case(stem)
}

/// Splits words at `_`, at a lower-to-upper change (`kernelStarted`), at a digit-to-upper change
/// (`V2Started`), and before the last capital of an acronym followed by a lowercase letter
/// (`HTTPCall` -> `http_call`); digits stay with the word before them.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_is_lower);
            if boundary && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A type as a Rust programmer writes it (`Vec<Option<String>>`, `&'static str`,
/// `HashMap<String, (u8, u8)>`), for the event catalog. `stringify!` cannot be used: on tokens
/// that went through a macro it prints `Vec < Option < String > >`.
pub(crate) fn type_string(tokens: TokenStream) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Prev {
        Start,
        Word,
        Punct(char),
        Arrow,
        Group,
    }
    let mut out = String::new();
    let mut prev = Prev::Start;
    let mut prev_keyword = false;
    for tt in tokens {
        let (text, cur) = match &tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                (format!("{open}{}{close}", type_string(g.stream())), Prev::Group)
            }
            TokenTree::Ident(i) => (i.to_string(), Prev::Word),
            TokenTree::Literal(l) => (l.to_string(), Prev::Word),
            TokenTree::Punct(p) => (p.as_char().to_string(), Prev::Punct(p.as_char())),
        };
        let space = match (prev, cur) {
            (Prev::Start, _) => false,
            (Prev::Word, Prev::Word) | (Prev::Arrow, _) => true,
            // `&mut [u8]`, `dyn (Trait)`, but `Fn(u8)`.
            (Prev::Word, Prev::Group) => prev_keyword,
            (Prev::Punct(',' | ';' | '+' | '='), _) => true,
            (_, Prev::Punct('+' | '=' | '-')) => true,
            _ => false,
        };
        if space {
            out.push(' ');
        }
        out.push_str(&text);
        prev_keyword = matches!(text.as_str(), "mut" | "dyn" | "impl" | "const" | "as");
        prev = match (prev, cur) {
            (Prev::Punct('-'), Prev::Punct('>')) => Prev::Arrow,
            _ => cur,
        };
    }
    out
}

fn generate(kind: Kind, args: &EventArgs, mut strukt: ItemStruct, name: &LitStr) -> TokenStream {
    let EventArgs { domain, stream, version, krate, .. } = args;
    let ident = &strukt.ident;
    let type_ident = ident.unraw().to_string();
    let stream = stream.clone().unwrap_or_else(|| {
        LitStr::new(&format!("events:{{{}}}:{}", domain.value(), kind.delivery()), Span::call_site())
    });
    let version = Literal::u32_unsuffixed(*version);
    let delivery = kind.delivery_variant();
    let marker = kind.marker_trait();
    let serde_path = LitStr::new(&format!("{}::__private::serde", attr::path_string(krate)), Span::call_site());

    let fields = strukt.fields.iter().filter_map(|field| {
        let field_name = field.ident.as_ref()?.unraw().to_string();
        let ty = type_string(field.ty.to_token_stream());
        Some(quote!((#field_name, #ty)))
    });

    // After the doc comments, before any other attribute: a `#[serde(...)]` the user wrote must
    // come after the derive that introduces it.
    let at = strukt.attrs.iter().take_while(|a| a.path().is_ident("doc")).count();
    strukt.attrs.splice(
        at..at,
        [
            syn::parse_quote!(#[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]),
            syn::parse_quote!(#[serde(crate = #serde_path)]),
        ],
    );

    quote! {
        #strukt

        #[allow(unused_qualifications, clippy::absolute_paths)]
        const _: () = {
            #[automatically_derived]
            impl #krate::Event for #ident {
                const NAME: &'static str = #name;
                const DOMAIN: &'static str = #domain;
                const VERSION: u32 = #version;
                const DELIVERY: #krate::Delivery = #krate::Delivery::#delivery;
                const STREAM: &'static str = #stream;
            }

            #[automatically_derived]
            impl #krate::#marker for #ident {}

            const __EVENT_DESCRIPTOR: #krate::__private::EventDescriptor = #krate::__private::EventDescriptor {
                info: #krate::__private::EventInfo::of::<#ident>(),
                module_path: ::core::module_path!(),
                type_ident: #type_ident,
                fields: &[#(#fields),*],
            };

            #krate::__private::inventory::submit!(__EVENT_DESCRIPTOR);
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_messages(kind: Kind, args: TokenStream, item: TokenStream) -> Vec<String> {
        match expand(kind, args, item) {
            Ok(tokens) => panic!("expected errors, got {tokens}"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn snake_case_names() {
        let cases = [
            ("KernelStartedBroadcastEvent", "kernel_started"),
            ("HTTPCallEvent", "http_call"),
            ("XMLHttpRequestEvent", "xml_http_request"),
            ("BgtaskDoneEvent", "bgtask_done"),
            ("SessionCreatedAnycastEvent", "session_created"),
            ("KernelStarted", "kernel_started"),
            ("Event", "event"),
            ("BroadcastEvent", "broadcast"),
            ("IOError", "io_error"),
            ("V2StartedEvent", "v2_started"),
            ("Http2Event", "http2"),
            ("VFolderDeletionRequestedEvent", "v_folder_deletion_requested"),
            ("My_Odd__NameEvent", "my_odd_name"),
            ("A", "a"),
            ("ABC", "abc"),
        ];
        for (ident, expected) in cases {
            assert_eq!(default_name(ident), expected, "{ident}");
        }
    }

    #[test]
    fn type_strings() {
        let cases = [
            (quote!(String), "String"),
            (quote!(Vec<Option<String>>), "Vec<Option<String>>"),
            (quote!(::std::collections::HashMap<String, (u8, u8)>), "::std::collections::HashMap<String, (u8, u8)>"),
            (quote!(&'static str), "&'static str"),
            (quote!(&'a mut [u8; 4]), "&'a mut [u8; 4]"),
            (quote!(Box<dyn Fn(u8) -> u8 + Send>), "Box<dyn Fn(u8) -> u8 + Send>"),
            (quote!(<T as Trait>::Assoc), "<T as Trait>::Assoc"),
            (quote!(Box<dyn Iterator<Item = u8>>), "Box<dyn Iterator<Item = u8>>"),
            (quote!(()), "()"),
            (quote!(&mut (u8, u8)), "&mut (u8, u8)"),
            (quote!(*const [u8]), "*const [u8]"),
            (quote!(r#type::Kind), "r#type::Kind"),
        ];
        for (tokens, expected) in cases {
            assert_eq!(type_string(tokens), expected);
        }
    }

    #[test]
    fn expands_a_broadcast_event() {
        let out = expand(
            Kind::Broadcast,
            quote!(domain = "kernel"),
            quote!(
                pub struct KernelStartedBroadcastEvent {
                    pub kernel_id: String,
                }
            ),
        )
        .map(|t| t.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        for needle in [
            "const NAME : & 'static str = \"kernel_started\"",
            "const STREAM : & 'static str = \"events:{kernel}:broadcast\"",
            "impl :: event_core :: BroadcastEvent for KernelStartedBroadcastEvent",
            "# [serde (crate = \"::event_core::__private::serde\")]",
        ] {
            assert!(out.contains(needle), "{needle} not in {out}");
        }
    }

    #[test]
    fn shape_errors() {
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(domain = "k"),
            quote!(
                struct Tuple(u32);
            ),
        );
        assert_eq!(
            msgs,
            ["event fields must be named, so the payload can evolve: write `struct Tuple { field: Type }`"]
        );
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(domain = "k"),
            quote!(
                struct Unit;
            ),
        );
        assert_eq!(msgs, ["an event needs braces so fields can be added later: write `struct Unit {}`"]);
        let msgs = error_messages(
            Kind::Anycast,
            quote!(domain = "k"),
            quote!(
                struct G<T> {
                    t: T,
                }
            ),
        );
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].starts_with("event types cannot be generic"), "{msgs:?}");
        let msgs = error_messages(
            Kind::Anycast,
            quote!(domain = "k"),
            quote!(
                enum E {
                    A,
                }
            ),
        );
        assert!(msgs[0].contains("not an enum"), "{msgs:?}");
        let msgs = error_messages(
            Kind::Anycast,
            quote!(domain = "k"),
            quote!(
                fn f() {}
            ),
        );
        assert!(msgs[0].starts_with("`#[anycast_event]` goes on a struct"), "{msgs:?}");
        let msgs = error_messages(
            Kind::Anycast,
            quote!(domain = "k"),
            quote!(
                #[derive(Clone, serde::Serialize)]
                struct S {}
            ),
        );
        assert_eq!(msgs, ["remove `Serialize`: `#[anycast_event]` derives it"]);
    }

    #[test]
    fn argument_errors_are_reported_together() {
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(name = "Has Space", version = 0, colour = "red"),
            quote!(
                struct S(u8);
            ),
        );
        assert_eq!(
            msgs,
            [
                "unknown argument `colour`; expected one of: `domain`, `name`, `stream`, `version`, `crate`",
                "invalid event name `\"Has Space\"`: use lowercase ASCII letters, digits, `_`, `.` or `-`, e.g. `name = \"kernel_started\"`",
                "`version` must be at least 1, e.g. `version = 2`",
                "missing `domain`: add `domain = \"...\"`, e.g. `#[broadcast_event(domain = \"kernel\")]`",
                "event fields must be named, so the payload can evolve: write `struct S { field: Type }`",
            ]
        );
    }

    #[test]
    fn bad_domain_is_not_also_reported_missing() {
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(domain = "a:b"),
            quote!(
                struct S {}
            ),
        );
        assert_eq!(
            msgs,
            ["invalid domain `\"a:b\"`: use lowercase ASCII letters, digits, `_`, `.` or `-`, e.g. `domain = \"kernel\"`"]
        );
    }

    #[test]
    fn stream_override_is_checked() {
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(domain = "k", stream = "a b"),
            quote!(
                struct S {}
            ),
        );
        assert!(msgs[0].starts_with("invalid stream `\"a b\"`"), "{msgs:?}");
    }

    #[test]
    fn non_ascii_struct_names_need_an_explicit_name() {
        let msgs = error_messages(
            Kind::Broadcast,
            quote!(domain = "k"),
            quote!(
                struct Événement {}
            ),
        );
        assert!(msgs[0].starts_with("cannot derive an event name from `Événement`"), "{msgs:?}");
        assert!(expand(
            Kind::Broadcast,
            quote!(domain = "k", name = "evenement"),
            quote!(
                struct Événement {}
            )
        )
        .is_ok());
    }
}
