//! `#[handler]`: registers an `async fn` as the handler of the event type of its last parameter.

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, LitStr, Path, ReturnType, Signature, Token, Type, Visibility};

use crate::attr::{self, kw, DurationArg, Errors};

const KNOWN: &[&str] = &[
    kw::GROUP,
    kw::MAX_ATTEMPTS,
    kw::BACKOFF,
    kw::BASE_DELAY,
    kw::MAX_DELAY,
    kw::TIMEOUT,
    kw::CONCURRENCY,
    kw::NAME,
    kw::CRATE,
];

/// Options that only make sense for anycast events (broadcast handlers are never retried).
const RETRY_OPTIONS: &[&str] = &[kw::MAX_ATTEMPTS, kw::BACKOFF, kw::BASE_DELAY, kw::MAX_DELAY];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backoff {
    Fixed,
    Exponential,
}

/// The checked arguments of `#[handler]`.
#[derive(Default)]
struct HandlerArgs {
    group: Option<LitStr>,
    max_attempts: Option<u32>,
    backoff: Option<Backoff>,
    base_delay: Option<DurationArg>,
    max_delay: Option<DurationArg>,
    timeout: Option<DurationArg>,
    concurrency: Option<u32>,
    name: Option<LitStr>,
    krate: Option<Path>,
    /// The key of the first retry option written, where the anycast check points.
    retry_key: Option<Path>,
}

/// The handler function: its signature is checked, its body is never parsed.
struct HandlerFn {
    sig: Signature,
}

impl Parse for HandlerFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Attribute::parse_outer(input)?;
        input.parse::<Visibility>()?;
        let starts_fn = input.peek(Token![fn])
            || input.peek(Token![async])
            || input.peek(Token![const])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !starts_fn {
            return Err(input
                .error("`#[handler]` goes on an `async fn`, e.g. `async fn on_kernel_started(ev: KernelStarted) {}`"));
        }
        let sig: Signature = input.parse()?;
        input.parse::<TokenStream>()?;
        Ok(HandlerFn { sig })
    }
}

/// The parameters of a valid handler signature.
struct Params<'a> {
    extractors: Vec<&'a Type>,
    event: &'a Type,
}

/// Expands `#[handler(args)]` on `item`: the function unchanged, plus its registration.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let func = errors.ok(syn::parse2::<HandlerFn>(item.clone()));
    let params = func.as_ref().and_then(|f| errors.ok(check_signature(&f.sig)));
    errors.finish()?;
    match (args, &func, params) {
        (Some(args), Some(func), Some(params)) => Ok(generate(&args, &func.sig, &params, item)),
        // Every `None` above recorded an error, so `finish` returned it.
        _ => Err(syn::Error::new(Span::call_site(), "invalid handler")),
    }
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Option<HandlerArgs> {
    let mut out = HandlerArgs::default();
    let mut valid = true;
    for arg in attr::parse_args(args, KNOWN, errors) {
        if RETRY_OPTIONS.contains(&arg.name) && out.retry_key.is_none() {
            out.retry_key = Some(arg.key.clone());
        }
        valid &= match arg.name {
            kw::GROUP => attr::set(&mut out.group, attr::checked_name(&arg, "group", "storage"), errors),
            kw::MAX_ATTEMPTS => attr::set(&mut out.max_attempts, attr::lit_u32(&arg, 1, 5), errors),
            kw::BACKOFF => attr::set(&mut out.backoff, backoff(&arg), errors),
            kw::BASE_DELAY => attr::set(&mut out.base_delay, attr::duration(&arg), errors),
            kw::MAX_DELAY => attr::set(&mut out.max_delay, attr::duration(&arg), errors),
            kw::TIMEOUT => attr::set(&mut out.timeout, nonzero(attr::duration(&arg)), errors),
            kw::CONCURRENCY => attr::set(&mut out.concurrency, attr::lit_u32(&arg, 1, 8), errors),
            kw::NAME => attr::set(&mut out.name, attr::checked_name(&arg, "handler name", "purge_vfolder"), errors),
            kw::CRATE => attr::set(&mut out.krate, attr::crate_path(&arg), errors),
            _ => unreachable!("`parse_args` only returns known arguments"),
        };
    }
    if let (Some(base), Some(max)) = (out.base_delay, out.max_delay) {
        if max.value < base.value {
            valid = false;
            errors.push(syn::Error::new(
                max.span,
                format!(
                    "`max_delay` ({}) is shorter than `base_delay` ({}); make `max_delay` at least `\"{}\"`",
                    max.value, base.value, base.value
                ),
            ));
        }
    }
    valid.then_some(out)
}

fn backoff(arg: &attr::Arg) -> syn::Result<Backoff> {
    let lit = attr::lit_str(arg)?;
    match lit.value().as_str() {
        "fixed" => Ok(Backoff::Fixed),
        "exponential" => Ok(Backoff::Exponential),
        _ => Err(syn::Error::new(
            lit.span(),
            format!("unknown backoff {}; expected `\"fixed\"` or `\"exponential\"`", attr::show(&lit)),
        )),
    }
}

fn nonzero(duration: syn::Result<DurationArg>) -> syn::Result<DurationArg> {
    let duration = duration?;
    if duration.value.0 == 0 {
        return Err(syn::Error::new(duration.span, "`timeout` must be longer than zero, e.g. `timeout = \"30s\"`"));
    }
    Ok(duration)
}

/// Checks the signature; returns the extractor types and the event type.
fn check_signature(sig: &Signature) -> syn::Result<Params<'_>> {
    let mut errors = Errors::default();
    let ident = &sig.ident;
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(constness, "handlers cannot be `const fn`; remove `const`"));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "handlers cannot be `unsafe fn`; remove `unsafe` (use an `unsafe` block inside if needed)",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, "handlers cannot be `extern` functions; remove the ABI"));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!("handlers must be `async fn`; write `async fn {ident}(...)`"),
        ));
    }
    let generics = &sig.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        let where_clause = &generics.where_clause;
        errors.push(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            "handlers cannot be generic: the handled event and each `State<T>` must be concrete types",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(variadic, "handlers cannot be variadic; remove `...`"));
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!(
                    "handlers are free functions, not methods: move `{ident}` out of the impl block and remove this `self` parameter"
                ),
            )),
            FnArg::Typed(pat_type) => {
                let ty = &*pat_type.ty;
                if let Some(span) = find_impl_keyword(ty.to_token_stream()) {
                    errors.push(syn::Error::new(
                        span,
                        "handler parameters cannot use `impl Trait`; name the type, e.g. `ev: KernelStarted`",
                    ));
                } else if let Type::Reference(reference) = ty {
                    let pat = &pat_type.pat;
                    let elem = &reference.elem;
                    errors.push(syn::Error::new_spanned(
                        reference.and_token,
                        format!(
                            "handler parameters are taken by value: write `{}: {}`",
                            pat.to_token_stream(),
                            elem.to_token_stream()
                        ),
                    ));
                } else {
                    types.push(ty);
                }
            }
        }
    }
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("a handler takes the event as its last parameter, e.g. `async fn {ident}(ev: MyEvent)`"),
        ));
    }
    errors.finish()?;
    match types.split_last() {
        Some((event, extractors)) => Ok(Params { extractors: extractors.to_vec(), event }),
        // No parameter at all was reported above.
        None => Err(syn::Error::new(Span::call_site(), "a handler takes the event as its last parameter")),
    }
}

/// The span of the first `impl` keyword in `tokens`, at any depth.
fn find_impl_keyword(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|tt| match tt {
        TokenTree::Ident(ident) if ident == "impl" => Some(ident.span()),
        TokenTree::Group(group) => find_impl_keyword(group.stream()),
        _ => None,
    })
}

fn generate(args: &HandlerArgs, sig: &Signature, params: &Params<'_>, item: TokenStream) -> TokenStream {
    let krate = args.krate.clone().unwrap_or_else(attr::default_crate_path);
    let fn_ident = &sig.ident;
    let name = args.name.clone().unwrap_or_else(|| LitStr::new(&fn_ident.unraw().to_string(), fn_ident.span()));
    let event = params.event;

    // Each extractor goes through `FromEventContext`, spanned on its type so that an error (a
    // `State<T>` whose `T` is not `Clone`, a type that is no extractor) points at that parameter.
    let arg_idents: Vec<_> = (0..params.extractors.len()).map(|i| format_ident!("__event_arg{i}")).collect();
    let extract = params.extractors.iter().zip(&arg_idents).map(|(ty, arg)| {
        quote_spanned! {ty.span()=>
            let #arg = <#ty as #krate::__private::FromEventContext>::from_context(__event_call)?;
        }
    });
    let requires = params
        .extractors
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #krate::__private::FromEventContext>::requirement));
    let decode = quote_spanned! {event.span()=>
        let __event_ev = __event_call.event::<#event>()?;
    };
    let event_info = quote_spanned!(event.span()=> #krate::__private::EventInfo::of::<#event>());
    let into_result = match &sig.output {
        ReturnType::Default => {
            quote!(#krate::__private::IntoHandlerResult::into_handler_result(__event_out))
        }
        // The qualified form puts an unsupported return type's error on that type alone.
        ReturnType::Type(_, ty) if find_impl_keyword(ty.to_token_stream()).is_none() => {
            quote_spanned! {ty.span()=>
                <#ty as #krate::__private::IntoHandlerResult>::into_handler_result(__event_out)
            }
        }
        ReturnType::Type(_, ty) => quote_spanned! {ty.span()=>
            #krate::__private::IntoHandlerResult::into_handler_result(__event_out)
        },
    };

    // Retry options on a broadcast handler: the event must be an anycast event. The check is
    // spanned on the option's key, which is what the user should remove.
    let retry_check = args.retry_key.as_ref().map(|key| {
        let span = key.span();
        let event = attr::respan(event.to_token_stream(), span);
        quote_spanned! {span=>
            const _: () = #krate::__private::assert_anycast::<#event>();
        }
    });

    let mut options = Vec::new();
    if let Some(group) = &args.group {
        options.push(quote!(group: ::core::option::Option::Some(#group)));
    }
    if let Some(n) = args.max_attempts {
        let n = Literal::u32_unsuffixed(n);
        options.push(quote!(max_attempts: ::core::option::Option::Some(#n)));
    }
    if let Some(backoff) = args.backoff {
        let variant = match backoff {
            Backoff::Fixed => format_ident!("Fixed"),
            Backoff::Exponential => format_ident!("Exponential"),
        };
        options.push(quote!(backoff: ::core::option::Option::Some(#krate::__private::Backoff::#variant)));
    }
    if let Some(d) = args.base_delay {
        options.push(quote!(base_delay: ::core::option::Option::Some(#d)));
    }
    if let Some(d) = args.max_delay {
        options.push(quote!(max_delay: ::core::option::Option::Some(#d)));
    }
    if let Some(d) = args.timeout {
        options.push(quote!(timeout: ::core::option::Option::Some(#d)));
    }
    if let Some(n) = args.concurrency {
        let n = Literal::u32_unsuffixed(n);
        options.push(quote!(concurrency: ::core::option::Option::Some(#n)));
    }
    let options = if options.is_empty() {
        quote!(#krate::__private::HandlerOptions::DEFAULT)
    } else {
        quote! {
            #krate::__private::HandlerOptions {
                #(#options,)*
                ..#krate::__private::HandlerOptions::DEFAULT
            }
        }
    };

    quote! {
        #item

        #[allow(
            unused_qualifications,
            clippy::absolute_paths,
            clippy::needless_update,
            clippy::question_mark_used,
            clippy::used_underscore_binding
        )]
        const _: () = {
            #retry_check

            const __EVENT_HANDLER: #krate::__private::HandlerDescriptor = #krate::__private::HandlerDescriptor {
                name: #name,
                module_path: ::core::module_path!(),
                event: #event_info,
                options: #options,
                requires: &[#(#requires),*],
                invoke: |__event_call| {
                    #(#extract)*
                    #decode
                    ::core::result::Result::Ok(#krate::__private::boxed(async move {
                        let __event_out = #fn_ident(#(#arg_idents,)* __event_ev).await;
                        #into_result
                    }))
                },
            };

            #krate::__private::inventory::submit!(__EVENT_HANDLER);
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_messages(args: TokenStream, item: TokenStream) -> Vec<String> {
        match expand(args, item) {
            Ok(tokens) => panic!("expected errors, got {tokens}"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn minimal_handler_expands() {
        let out = expand(
            quote!(),
            quote!(
                async fn on_ping(ev: Ping) {}
            ),
        )
        .map(|t| t.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        for needle in [
            "async fn on_ping (ev : Ping) { }",
            "let __event_ev = __event_call . event :: < Ping > () ?",
            "name : \"on_ping\"",
            "requires : & []",
            "options : :: event_core :: __private :: HandlerOptions :: DEFAULT",
        ] {
            assert!(out.contains(needle), "{needle} not in {out}");
        }
        assert!(!out.contains("assert_anycast"), "{out}");
    }

    #[test]
    fn retry_options_assert_anycast() {
        let out = expand(
            quote!(max_attempts = 2),
            quote!(
                async fn h(ev: Ping) {}
            ),
        )
        .map(|t| t.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("assert_anycast :: < Ping > ()"), "{out}");
        let out = expand(
            quote!(timeout = "1s", group = "g"),
            quote!(
                async fn h(ev: Ping) {}
            ),
        )
        .map(|t| t.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.contains("assert_anycast"), "{out}");
    }

    #[test]
    fn signature_errors() {
        let cases = [
            (quote!(fn h(ev: E) {}), "handlers must be `async fn`; write `async fn h(...)`"),
            (
                quote!(async fn h() {}),
                "a handler takes the event as its last parameter, e.g. `async fn h(ev: MyEvent)`",
            ),
            (
                quote!(async fn h(&self, ev: E) {}),
                "handlers are free functions, not methods: move `h` out of the impl block and remove this `self` parameter",
            ),
            (
                quote!(async fn h<T>(ev: T) {}),
                "handlers cannot be generic: the handled event and each `State<T>` must be concrete types",
            ),
            (
                quote!(async fn h(ev: E) where E: Clone {}),
                "handlers cannot be generic: the handled event and each `State<T>` must be concrete types",
            ),
            (quote!(async unsafe fn h(ev: E) {}), "handlers cannot be `unsafe fn`; remove `unsafe` (use an `unsafe` block inside if needed)"),
            (quote!(async extern "C" fn h(ev: E) {}), "handlers cannot be `extern` functions; remove the ABI"),
            (quote!(const async fn h(ev: E) {}), "handlers cannot be `const fn`; remove `const`"),
            (
                quote!(async fn h(ev: impl Event) {}),
                "handler parameters cannot use `impl Trait`; name the type, e.g. `ev: KernelStarted`",
            ),
            (quote!(async fn h(ev: &E) {}), "handler parameters are taken by value: write `ev: E`"),
            (
                quote!(struct S;),
                "`#[handler]` goes on an `async fn`, e.g. `async fn on_kernel_started(ev: KernelStarted) {}`",
            ),
        ];
        for (item, expected) in cases {
            assert_eq!(error_messages(quote!(), item.clone()), [expected], "{item}");
        }
    }

    #[test]
    fn all_errors_are_reported_together() {
        let msgs = error_messages(
            quote!(retries = 3, backoff = "linear", timeout = "10 parsecs", concurrency = 0),
            quote!(
                fn h<T>() {}
            ),
        );
        assert_eq!(
            msgs,
            [
                "unknown argument `retries`; expected one of: `group`, `max_attempts`, `backoff`, `base_delay`, `max_delay`, `timeout`, `concurrency`, `name`, `crate`",
                "unknown backoff `\"linear\"`; expected `\"fixed\"` or `\"exponential\"`",
                "invalid duration `\"10 parsecs\"`: write a number followed by `ms`, `s`, `m` or `h`, e.g. `\"250ms\"`",
                "`concurrency` must be at least 1, e.g. `concurrency = 8`",
                "handlers must be `async fn`; write `async fn h(...)`",
                "handlers cannot be generic: the handled event and each `State<T>` must be concrete types",
                "a handler takes the event as its last parameter, e.g. `async fn h(ev: MyEvent)`",
            ]
        );
    }

    #[test]
    fn delays_are_cross_checked() {
        let msgs = error_messages(
            quote!(base_delay = "2s", max_delay = "500ms"),
            quote!(
                async fn h(ev: E) {}
            ),
        );
        assert_eq!(msgs, ["`max_delay` (500ms) is shorter than `base_delay` (2s); make `max_delay` at least `\"2s\"`"]);
        let msgs = error_messages(
            quote!(timeout = "0s"),
            quote!(
                async fn h(ev: E) {}
            ),
        );
        assert_eq!(msgs, ["`timeout` must be longer than zero, e.g. `timeout = \"30s\"`"]);
        let msgs = error_messages(
            quote!(group = "Storage Team"),
            quote!(
                async fn h(ev: E) {}
            ),
        );
        assert_eq!(
            msgs,
            ["invalid group `\"Storage Team\"`: use lowercase ASCII letters, digits, `_`, `.` or `-`, e.g. `group = \"storage\"`"]
        );
    }
}
