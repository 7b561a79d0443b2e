//! `#[controller]`: an `impl` block as a `jararaca_http::Controller`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};

use syn::spanned::Spanned;
use syn::{Expr, FnArg, ImplItem, ItemImpl, LitStr, Token, Type};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `"/path", key = value, …` as given to `#[controller]` and the route attributes.
struct Args {
    path: LitStr,
    name: Option<LitStr>,
    summary: Option<LitStr>,
    layers: Vec<Expr>,
    /// `query`, `infinite_query`, `mutation`: the TypeScript client's hooks for the route.
    hooks: Vec<syn::Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path: LitStr = input.parse()?;
        let mut args = Args {
            path,
            name: None,
            summary: None,
            layers: Vec::new(),
            hooks: Vec::new(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.parse()?;
            if matches!(
                key.to_string().as_str(),
                "query" | "infinite_query" | "mutation"
            ) && !input.peek(Token![=])
            {
                args.hooks.push(key);
                continue;
            }
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => args.name = Some(input.parse()?),
                "summary" => args.summary = Some(input.parse()?),
                "layer" => args.layers.push(input.parse()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown option `{other}`: expected `name`, `summary`, `layer`, `query`, `infinite_query` or `mutation`"
                        ),
                    ));
                }
            }
        }
        Ok(args)
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    if args.summary.is_some() {
        return Err(syn::Error::new(
            args.path.span(),
            "`summary` is a route option",
        ));
    }
    if let Some(hook) = args.hooks.first() {
        return Err(syn::Error::new(
            hook.span(),
            format!("`{hook}` is a route option"),
        ));
    }
    let mut block: ItemImpl = syn::parse2(item)?;
    let self_ty = &block.self_ty;
    let name = controller_name(args.name.as_ref(), self_ty)?;

    let mut routes = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(function) = item else {
            continue;
        };
        let mut found = None;
        let mut kept = Vec::with_capacity(function.attrs.len());
        for attr in function.attrs.drain(..) {
            match METHODS.iter().find(|m| attr.path().is_ident(m)) {
                Some(method) if found.is_none() => found = Some((*method, attr)),
                Some(_) => {
                    return Err(syn::Error::new(
                        attr.span(),
                        "a method can have only one route attribute",
                    ));
                }
                None => kept.push(attr),
            }
        }
        function.attrs = kept;
        let Some((method, attr)) = found else {
            continue;
        };
        let route_args: Args = attr.parse_args()?;
        routes.push(route(method, &route_args, function)?);
    }

    let http = http_path();
    let path = &args.path;
    let layers = &args.layers;
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    Ok(quote! {
        #block

        impl #impl_generics #self_ty #where_clause {
            /// This controller's routes, under its prefix.
            pub fn controller() -> #http::Controller {
                #http::Controller::new(#name, #path)
                    #(.route(#routes))*
                    #(.layer(#layers))*
            }
        }
    })
}

fn route(method: &str, args: &Args, function: &syn::ImplItemFn) -> syn::Result<TokenStream> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "a route handler must be `async`",
        ));
    }
    let http = http_path();
    let di = crate::di_path();
    let ident = &sig.ident;
    let method_ident = format_ident!("{method}");
    let path = &args.path;
    let handler = handler_expr(sig, &di, "a route method")?;
    let name = match &args.name {
        Some(name) => quote!(#name),
        None => {
            let name = ident.to_string();
            quote!(#name)
        }
    };
    let summary = args.summary.as_ref().map(|s| quote!(.summary(#s)));
    let layers = &args.layers;
    let hooks = args.hooks.iter().map(|hook| format_ident!("{}_hook", hook));
    Ok(quote! {
        #http::Route::#method_ident(#path, #handler)
            .name(#name)
            #summary
            #(.#hooks())*
            #(.layer(#layers))*
    })
}

/// `jararaca_http` directly, or through the facade's `jararaca::http`.
fn http_path() -> syn::Path {
    crate::capability_path("jararaca-http", "http")
}

/// The handler a method becomes: `Self::method` for an associated function, or, for a method
/// taking `&self`, a closure that takes the controller from the container (`Inject<Self>`)
/// and the method's other arguments as extractors. `what` names the method in errors.
pub(crate) fn handler_expr(
    sig: &syn::Signature,
    di: &syn::Path,
    what: &str,
) -> syn::Result<TokenStream> {
    let ident = &sig.ident;
    let Some(FnArg::Receiver(receiver)) = sig.inputs.first() else {
        return Ok(quote!(Self::#ident));
    };
    if receiver.reference.is_none() || receiver.mutability.is_some() {
        return Err(syn::Error::new(
            receiver.span(),
            format!("{what} takes `&self` (the controller is shared between requests)"),
        ));
    }
    let mut params = Vec::new();
    let mut names = Vec::new();
    for (i, input) in sig.inputs.iter().skip(1).enumerate() {
        let FnArg::Typed(typed) = input else { continue };
        let arg = format_ident!("__arg{i}");
        let ty = &typed.ty;
        params.push(quote_spanned!(ty.span()=> #arg: #ty));
        names.push(arg);
    }
    Ok(quote! {
        |#di::Inject(__this): #di::Inject<Self>, #(#params),*| async move {
            __this.#ident(#(#names),*).await
        }
    })
}

/// A controller's name: the one given, else the last segment of the `impl` block's type.
pub(crate) fn controller_name(given: Option<&LitStr>, self_ty: &Type) -> syn::Result<TokenStream> {
    if let Some(name) = given {
        return Ok(quote!(#name));
    }
    let Type::Path(path) = self_ty else {
        return Err(syn::Error::new(self_ty.span(), "expected a named type"));
    };
    let ident = path
        .path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    Ok(quote!(#ident))
}
