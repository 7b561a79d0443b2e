//! `#[rest_client]`: a trait of REST routes, implemented over `jararaca_rpc::RestClient`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ItemTrait, LitInt, LitStr, Pat, PathArguments, ReturnType,
    Token, TraitItem, TraitItemFn, Type,
};

const VERBS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
const PARAMS: &str =
    "`#[path]`, `#[query]`, `#[header(\"Name\")]`, `#[body]`, `#[form]` or `#[file]`";

/// `"/base", client = Name` as given to `#[rest_client]`.
struct Args {
    base: LitStr,
    client: Option<Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let base: LitStr = input.parse()?;
        let mut client = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            if key == "client" {
                client = Some(input.parse()?);
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown option `{key}`: expected `client = Name`"),
                ));
            }
        }
        Ok(Self { base, client })
    }
}

/// Where one argument goes in the request.
enum Param {
    Path(String),
    Query { name: String, optional: bool },
    Header(String),
    Body,
    Form(String),
    File(String),
}

/// What a route returns, which picks the `RestClient` method that sends it.
enum Returns {
    Json(Box<Type>),
    Bytes,
    Response,
    Unit,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let mut item: ItemTrait = syn::parse2(item)?;
    let rpc = rpc_path();
    let trait_ident = item.ident.clone();
    let client_ident = args
        .client
        .clone()
        .unwrap_or_else(|| format_ident!("{}Client", trait_ident));
    let vis = item.vis.clone();

    let mut error: Option<Type> = None;
    let mut methods = Vec::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(function) = trait_item else {
            continue;
        };
        let Some(method) = route(function, &rpc, &mut error)? else {
            continue;
        };
        methods.push(method);
    }
    let error = error.unwrap_or_else(|| syn::parse_quote!(::core::convert::Infallible));
    let base = &args.base;
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "a #[rest_client] trait cannot be generic",
        ));
    }
    let trait_doc = format!(
        "[`{trait_ident}`] over a `RestClient`: its routes under `{}` below the client's base URL.",
        base.value(),
    );

    Ok(quote! {
        #item

        #[doc = #trait_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client_ident<S> {
            client: #rpc::RestClient<S, #error>,
        }

        impl<S> #client_ident<S> {
            /// The routes of the trait under its base path, below `client`'s base URL.
            #vis fn new(client: #rpc::RestClient<S, #error>) -> Self {
                Self { client: client.nest(#base) }
            }

            /// The `RestClient` the routes are sent with (its base URL includes the trait's).
            #vis fn rest_client(&self) -> &#rpc::RestClient<S, #error> {
                &self.client
            }
        }

        impl<S, B> #trait_ident for #client_ident<S>
        where
            S: #rpc::Service<#rpc::http::Request<#rpc::Body>, Response = #rpc::http::Response<B>>
                + ::core::clone::Clone
                + ::core::marker::Send
                + ::core::marker::Sync,
            S::Future: ::core::marker::Send,
            S::Error: ::core::convert::Into<#rpc::BoxError>,
            B: #rpc::http_body::Body + ::core::marker::Send,
            B::Data: ::core::marker::Send,
            B::Error: ::core::convert::Into<#rpc::BoxError>,
        {
            #(#methods)*
        }
    })
}

/// One route: rewrites the trait method in place (attributes removed, `async fn` turned into
/// a `Send` future) and returns the method of the generated impl. `None` for a method with a
/// default body and no route attribute, which is left alone.
fn route(
    function: &mut TraitItemFn,
    rpc: &syn::Path,
    error: &mut Option<Type>,
) -> syn::Result<Option<TokenStream>> {
    let mut verb = None;
    let mut timeout: Option<LitInt> = None;
    let mut retryable = None;
    let mut success: Option<Vec<LitInt>> = None;
    let mut kept = Vec::with_capacity(function.attrs.len());
    for attr in std::mem::take(&mut function.attrs) {
        if let Some(name) = VERBS.iter().find(|v| attr.path().is_ident(v)) {
            if verb.is_some() {
                return Err(syn::Error::new(
                    attr.path().span(),
                    "a method can have only one route attribute",
                ));
            }
            let template: LitStr = attr.parse_args().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected the route's path: `#[{name}(\"/items/{{id}}\")]`"),
                )
            })?;
            verb = Some((format_ident!("{name}", span = attr.path().span()), template));
        } else if attr.path().is_ident("timeout") {
            timeout = Some(attr.parse_args().map_err(|e| {
                syn::Error::new(e.span(), "expected milliseconds: `#[timeout(500)]`")
            })?);
        } else if attr.path().is_ident("retryable") {
            // `#[retryable]`, or `#[retryable(false)]` to keep an idempotent method from it.
            retryable = Some(match &attr.meta {
                syn::Meta::Path(_) => true,
                _ => {
                    attr.parse_args::<syn::LitBool>()
                        .map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                "expected `#[retryable]` or `#[retryable(false)]`",
                            )
                        })?
                        .value
                }
            });
        } else if attr.path().is_ident("success") {
            let statuses = attr
                .parse_args_with(syn::punctuated::Punctuated::<LitInt, Token![,]>::parse_terminated)
                .map_err(|e| {
                    syn::Error::new(e.span(), "expected status codes: `#[success(200, 204)]`")
                })?;
            for status in &statuses {
                let code: u16 = status.base10_parse()?;
                if !(100..=999).contains(&code) {
                    return Err(syn::Error::new(status.span(), "not an HTTP status code"));
                }
            }
            if statuses.is_empty() {
                return Err(syn::Error::new(
                    attr.span(),
                    "expected status codes: `#[success(200, 204)]`",
                ));
            }
            success = Some(statuses.into_iter().collect());
        } else {
            kept.push(attr);
        }
    }
    function.attrs = kept;
    let sig = &mut function.sig;
    let Some((verb, template)) = verb else {
        if function.default.is_some() {
            return Ok(None);
        }
        return Err(syn::Error::new(
            sig.ident.span(),
            "a #[rest_client] method needs a route attribute: `#[get(\"/path\")]`, `#[post]`, \
             `#[put]`, `#[patch]` or `#[delete]`",
        ));
    };
    if let Some(default) = &function.default {
        return Err(syn::Error::new(
            default.span(),
            "a route has no body: #[rest_client] writes it",
        ));
    }
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "a route must be an `async fn`",
        ));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "a route takes `&self` first",
            ));
        }
    }

    // The arguments, where each goes.
    let mut params = Vec::new();
    let mut body_seen: Option<(Span, &'static str)> = None;
    for input in sig.inputs.iter_mut().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new(
                typed.pat.span(),
                "a route's arguments are plain names",
            ));
        };
        let ident = pat.ident.clone();
        let default_name = ident.to_string();
        let mut param = None;
        for attr in std::mem::take(&mut typed.attrs) {
            let kind = attr
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let explicit = match &attr.meta {
                syn::Meta::Path(_) => None,
                _ => Some(attr.parse_args::<LitStr>()?.value()),
            };
            let name = explicit.clone().unwrap_or_else(|| default_name.clone());
            let found = match kind.as_str() {
                "path" => Param::Path(name),
                "query" => Param::Query {
                    name,
                    optional: is_option(&typed.ty),
                },
                "header" => {
                    Param::Header(explicit.unwrap_or_else(|| default_name.replace('_', "-")))
                }
                "body" | "form" | "file" => {
                    let this = if kind == "body" { "body" } else { "form" };
                    match body_seen {
                        Some((_, "body")) if this == "body" => {
                            return Err(syn::Error::new(
                                attr.path().span(),
                                "a request has one body: there is already a `#[body]`",
                            ));
                        }
                        Some((_, seen)) if seen != this => {
                            return Err(syn::Error::new(
                                attr.path().span(),
                                "a request has one body: `#[body]` (JSON) cannot be combined \
                                 with `#[form]` or `#[file]` fields",
                            ));
                        }
                        _ => body_seen = Some((attr.path().span(), this)),
                    }
                    match kind.as_str() {
                        "body" => {
                            if explicit.is_some() {
                                return Err(syn::Error::new(
                                    attr.path().span(),
                                    "`#[body]` takes no name: the argument is the whole JSON body",
                                ));
                            }
                            Param::Body
                        }
                        "form" => Param::Form(name),
                        _ => Param::File(name),
                    }
                }
                _ => {
                    return Err(syn::Error::new(
                        attr.path().span(),
                        format!(
                            "unknown parameter attribute `#[{}]`: expected {PARAMS}",
                            attr.path().to_token_stream().to_string().replace(' ', "")
                        ),
                    ));
                }
            };
            if param.replace(found).is_some() {
                return Err(syn::Error::new(
                    attr.path().span(),
                    "an argument goes in one place: give it one attribute",
                ));
            }
        }
        let Some(param) = param else {
            return Err(syn::Error::new(
                typed.span(),
                format!("say where `{ident}` goes: {PARAMS}"),
            ));
        };
        params.push((ident, param, typed.span()));
    }

    // The template and the `#[path]` arguments must agree.
    let names = template_names(&template)?;
    for (ident, param, span) in &params {
        if let Param::Path(name) = param
            && !names.contains(name)
        {
            return Err(syn::Error::new(
                *span,
                format!(
                    "the path `{}` has no `{{{name}}}` for `{ident}`",
                    template.value()
                ),
            ));
        }
    }
    for name in &names {
        let given = params
            .iter()
            .any(|(_, p, _)| matches!(p, Param::Path(n) if n == name));
        if !given {
            return Err(syn::Error::new(
                template.span(),
                format!("`{{{name}}}` has no argument: add `#[path] {name}: …`"),
            ));
        }
    }

    // `Result<T, RpcError<E>>`: T picks the sending method, E the client's error type.
    let ReturnType::Type(_, output) = &sig.output else {
        return Err(return_error(sig.ident.span()));
    };
    let (returns, this_error) = returns(output)?;
    match error {
        Some(first) if quote!(#first).to_string() != quote!(#this_error).to_string() => {
            return Err(syn::Error::new(
                this_error.span(),
                format!(
                    "every route of a #[rest_client] returns the same `RpcError<{}>`",
                    quote!(#first)
                ),
            ));
        }
        Some(_) => {}
        None => *error = Some(this_error.clone()),
    }

    let calls = params.iter().map(|(ident, param, span)| match param {
        Param::Path(name) => quote_spanned!(*span=> .path(#name, #ident)),
        Param::Query {
            name,
            optional: false,
        } => quote_spanned!(*span=> .query(#name, #ident)),
        Param::Query {
            name,
            optional: true,
        } => quote_spanned!(*span=> .query_opt(#name, #ident)),
        Param::Header(name) => quote_spanned!(*span=> .header(#name, #ident)),
        Param::Body => quote_spanned!(*span=> .json(&#ident)),
        Param::Form(name) => quote_spanned!(*span=> .form(#name, #ident)),
        Param::File(name) => quote_spanned!(*span=> .file(#name, #ident)),
    });
    let timeout = timeout.map(|ms| quote!(.timeout(::core::time::Duration::from_millis(#ms))));
    let retryable = retryable.map(|retry| quote!(.retryable(#retry)));
    let success = success.map(|statuses| {
        // Each code was checked to be in `StatusCode`'s range above.
        quote!(.success_statuses(
            [#(#statuses),*]
                .into_iter()
                .filter_map(|code: u16| #rpc::http::StatusCode::from_u16(code).ok())
        ))
    });
    let send = match &returns {
        Returns::Json(ty) => quote!(json::<#ty>),
        Returns::Bytes => quote!(bytes),
        Returns::Response => quote!(send),
        Returns::Unit => quote!(execute),
    };

    sig.asyncness = None;
    sig.output = syn::parse_quote!(
        -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
    );
    let sig = &*sig;
    Ok(Some(quote! {
        #sig {
            let request = #rpc::RestRequest::<#this_error>::#verb(#template)
                #(#calls)*
                #timeout
                #retryable
                #success;
            // `RestClient`'s senders build the request before returning their future, which
            // then holds only what is sent.
            self.client.#send(request)
        }
    }))
}

fn return_error(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "a route returns `Result<T, RpcError<E>>`, with T a JSON-decoded type, `Bytes`, \
         `RpcResponse` or `()`",
    )
}

/// The last segment's generic type arguments, if the path's last segment is `name`.
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    match &last.arguments {
        PathArguments::None => Some(Vec::new()),
        PathArguments::AngleBracketed(args) => Some(
            args.args
                .iter()
                .filter_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect(),
        ),
        PathArguments::Parenthesized(_) => None,
    }
}

fn returns(output: &Type) -> syn::Result<(Returns, Type)> {
    let args = generic_args(output, "Result").ok_or_else(|| return_error(output.span()))?;
    let [ok, err] = args.as_slice() else {
        return Err(return_error(output.span()));
    };
    let error = match generic_args(err, "RpcError").as_deref() {
        Some([]) => syn::parse_quote!(::core::convert::Infallible),
        Some([e]) => (*e).clone(),
        _ => return Err(return_error(err.span())),
    };
    let returns = match ok {
        Type::Tuple(t) if t.elems.is_empty() => Returns::Unit,
        _ if generic_args(ok, "Bytes").is_some_and(|a| a.is_empty()) => Returns::Bytes,
        _ if generic_args(ok, "RpcResponse").is_some_and(|a| a.is_empty()) => Returns::Response,
        _ => Returns::Json(Box::new((*ok).clone())),
    };
    Ok((returns, error))
}

fn is_option(ty: &Type) -> bool {
    generic_args(ty, "Option").is_some_and(|a| a.len() == 1)
}

/// The `{name}` parameters of a path template.
fn template_names(template: &LitStr) -> syn::Result<Vec<String>> {
    let value = template.value();
    let mut names = Vec::new();
    let mut rest = value.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(syn::Error::new(template.span(), "unclosed `{` in the path"));
        };
        names.push(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// `jararaca_rpc` as the caller names it, or the facade's `jararaca::rpc`.
fn rpc_path() -> syn::Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    // The crate's own tests and doctests are separate crates that name it `jararaca_rpc`.
    match crate_name("jararaca-rpc") {
        Ok(FoundCrate::Itself) => syn::parse_quote!(::jararaca_rpc),
        _ => crate::capability_path("jararaca-rpc", "rpc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(item: TokenStream) -> String {
        match expand(quote!("/base"), item) {
            Ok(tokens) => panic!("expanded: {tokens}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_route_expands_to_the_request_builder() {
        let tokens = expand(
            quote!("/orders"),
            quote! {
                pub trait Orders {
                    #[get("/items/{id}")]
                    #[timeout(250)]
                    #[retryable(false)]
                    #[success(200, 203)]
                    async fn item(&self, #[path] id: u32, #[query("q")] search: Option<String>)
                        -> Result<Item, RpcError<ApiError>>;
                }
            },
        )
        .unwrap()
        .to_string();
        for expected in [
            "pub struct OrdersClient < S >",
            "client . nest (\"/orders\")",
            "RestRequest :: < ApiError > :: get (\"/items/{id}\")",
            ". path (\"id\" , id)",
            ". query_opt (\"q\" , search)",
            "Duration :: from_millis (250)",
            ". retryable (false)",
            "[200 , 203]",
            "client . json :: < Item > (request)",
            "impl :: core :: future :: Future < Output = Result < Item , RpcError < ApiError > > >",
        ] {
            assert!(tokens.contains(expected), "{expected}\n{tokens}");
        }
        assert!(!tokens.contains("# [path]"), "{tokens}");
    }

    #[test]
    fn a_path_argument_without_its_placeholder_is_an_error() {
        let message = error(quote! {
            trait T {
                #[get("/items")]
                async fn item(&self, #[path] id: u32) -> Result<(), RpcError>;
            }
        });
        assert!(message.contains("has no `{id}`"), "{message}");
        let message = error(quote! {
            trait T {
                #[get("/items/{id}")]
                async fn item(&self) -> Result<(), RpcError>;
            }
        });
        assert!(message.contains("`{id}` has no argument"), "{message}");
    }

    #[test]
    fn unknown_attributes_and_two_bodies_are_errors() {
        let message = error(quote! {
            trait T {
                #[post("/items")]
                async fn add(&self, #[json] item: Item) -> Result<(), RpcError>;
            }
        });
        assert!(
            message.contains("unknown parameter attribute `#[json]`"),
            "{message}"
        );
        let message = error(quote! {
            trait T {
                #[post("/items")]
                async fn add(&self, #[body] a: Item, #[body] b: Item) -> Result<(), RpcError>;
            }
        });
        assert!(message.contains("already a `#[body]`"), "{message}");
        let message = error(quote! {
            trait T {
                #[post("/items")]
                async fn add(&self, #[body] a: Item, #[form] b: String) -> Result<(), RpcError>;
            }
        });
        assert!(message.contains("cannot be combined"), "{message}");
        let message = error(quote! {
            trait T {
                #[post("/items")]
                async fn add(&self, a: Item) -> Result<(), RpcError>;
            }
        });
        assert!(message.contains("say where `a` goes"), "{message}");
        let message = error(quote! {
            trait T {
                #[get("/items")]
                async fn list(&self) -> Vec<Item>;
            }
        });
        assert!(message.contains("Result<T, RpcError<E>>"), "{message}");
    }
}
