//! `#[derive(WebSocketMessage)]` and `#[websocket_controller]` with its `#[websocket]`
//! endpoints.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{DeriveInput, Expr, ImplItem, ItemImpl, LitStr, Token, Type};

/// `jararaca_ws` directly, or through the facade's `jararaca::ws`.
fn ws_path() -> syn::Path {
    crate::capability_path("jararaca-ws", "ws")
}

fn http_path() -> syn::Path {
    crate::capability_path("jararaca-http", "http")
}

pub(crate) fn expand_message(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut id: Option<LitStr> = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("websocket_message"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("id") {
                id = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("expected `id = \"…\"`"))
            }
        })?;
    }
    let Some(id) = id else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "a WebSocketMessage needs `#[websocket_message(id = \"…\")]` (its MESSAGE_ID)",
        ));
    };
    if id.value().is_empty() {
        return Err(syn::Error::new_spanned(
            &id,
            "the MESSAGE_ID cannot be empty",
        ));
    }
    let krate = ws_path();
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::WebSocketMessage for #name #ty_generics #where_clause {
            const MESSAGE_ID: &'static str = #id;
        }
    })
}

/// `"/prefix", name = "…", messages(A, B)` of `#[websocket_controller]`.
struct ControllerArgs {
    prefix: LitStr,
    name: Option<LitStr>,
    messages: Vec<Type>,
}

impl Parse for ControllerArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let prefix: LitStr = input.parse()?;
        let mut args = Self {
            prefix,
            name: None,
            messages: Vec::new(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.parse()?;
            match key.to_string().as_str() {
                "name" => {
                    input.parse::<Token![=]>()?;
                    args.name = Some(input.parse()?);
                }
                "messages" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let types = content.parse_terminated(Type::parse, Token![,])?;
                    args.messages.extend(types);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown option `{other}`: expected `name = \"…\"` or `messages(…)`"
                        ),
                    ));
                }
            }
        }
        Ok(args)
    }
}

/// `"/path", name = "…", layer = expr` of `#[websocket]`.
struct EndpointArgs {
    path: LitStr,
    name: Option<LitStr>,
    layers: Vec<Expr>,
}

impl Parse for EndpointArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path: LitStr = input.parse()?;
        let mut args = Self {
            path,
            name: None,
            layers: Vec::new(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => args.name = Some(input.parse()?),
                "layer" => args.layers.push(input.parse()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`: expected `name` or `layer`"),
                    ));
                }
            }
        }
        Ok(args)
    }
}

pub(crate) fn expand_controller(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: ControllerArgs = syn::parse2(args)?;
    let mut block: ItemImpl = syn::parse2(item)?;
    let self_ty = &block.self_ty;
    let name = crate::controller::controller_name(args.name.as_ref(), self_ty)?;
    let mut routes = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(function) = item else {
            continue;
        };
        let mut found = None;
        let mut kept = Vec::with_capacity(function.attrs.len());
        for attr in function.attrs.drain(..) {
            if attr.path().is_ident("websocket") {
                if found.is_some() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "a method can have only one #[websocket] attribute",
                    ));
                }
                found = Some(attr);
            } else {
                kept.push(attr);
            }
        }
        function.attrs = kept;
        let Some(attr) = found else { continue };
        let endpoint: EndpointArgs = attr.parse_args()?;
        routes.push(endpoint_route(&endpoint, function)?);
    }
    let ws = ws_path();
    let prefix = &args.prefix;
    let messages = &args.messages;
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    Ok(quote! {
        #block

        impl #impl_generics #self_ty #where_clause {
            /// This controller's WebSocket endpoints, under its prefix, and its messages.
            pub fn websocket_controller() -> #ws::WebSocketController {
                #ws::WebSocketController::new(#name, #prefix)
                    #(.route(#routes))*
                    #(.message::<#messages>())*
            }
        }
    })
}

fn endpoint_route(args: &EndpointArgs, function: &syn::ImplItemFn) -> syn::Result<TokenStream> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "a WebSocket endpoint must be `async`",
        ));
    }
    let http = http_path();
    let di = crate::di_path();
    let ident = &sig.ident;
    let path = &args.path;
    let handler = crate::controller::handler_expr(sig, &di, "an endpoint method")?;
    let name = match &args.name {
        Some(name) => quote!(#name),
        None => {
            let name = ident.to_string();
            quote!(#name)
        }
    };
    let layers = &args.layers;
    Ok(quote! {
        #http::Route::get(#path, #handler)
            .name(#name)
            #(.layer(#layers))*
    })
}
