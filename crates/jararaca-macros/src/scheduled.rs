//! `#[scheduled("cron", …)]`: an async function as a `jararaca_cron::ScheduledAction`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::{Expr, ItemFn, Lit, LitStr};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function: ItemFn = syn::parse2(item)?;
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            function.sig.fn_token,
            "#[scheduled] goes on an `async fn`",
        ));
    }
    let params = function.sig.inputs.len();
    if params > 1 {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "a scheduled action takes nothing, one `ScheduleDispatchData` or one `Tick`",
        ));
    }
    if let Some(syn::FnArg::Receiver(receiver)) = function.sig.inputs.first() {
        return Err(syn::Error::new_spanned(
            receiver,
            "a scheduled action is a free or associated function, not a method",
        ));
    }

    let mut options = Vec::new();
    let krate = crate::capability_path("jararaca-cron", "cron");
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "name" | "group" | "channel_id" | "id" => {
                let value: LitStr = meta.value()?.parse()?;
                let method = format_ident!("{key}");
                options.push(quote!(.#method(#value)));
            }
            "allow_overlap" | "exclusive" => {
                let value: syn::LitBool = meta.value()?.parse()?;
                let method = format_ident!("{key}");
                options.push(quote!(.#method(#value)));
            }
            "timeout" => {
                let value: Lit = meta.value()?.parse()?;
                let seconds = match &value {
                    Lit::Int(int) => int.base10_parse::<f64>()?,
                    Lit::Float(float) => float.base10_parse::<f64>()?,
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "`timeout` is a number of seconds",
                        ));
                    }
                };
                options.push(quote!(.timeout(::std::time::Duration::from_secs_f64(#seconds))));
            }
            "on_error" => {
                let handler: Expr = meta.value()?.parse()?;
                options.push(quote!(.on_error(#handler)));
            }
            _ => {
                return Err(meta.error(
                    "unknown option: expected a cron string, then `name`, `group`, `channel_id`, \
                     `id`, `allow_overlap`, `exclusive`, `timeout` (seconds) or `on_error`",
                ));
            }
        }
        Ok(())
    });
    // The first argument is the cron expression, a string literal; options follow.
    let mut iter = args.into_iter();
    let mut first = TokenStream::new();
    for token in iter.by_ref() {
        if matches!(&token, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
            break;
        }
        first.extend(std::iter::once(token));
    }
    let cron = match syn::parse2::<LitStr>(first.clone()) {
        Ok(lit) => lit,
        Err(_) => {
            return Err(syn::Error::new_spanned(
                first,
                "#[scheduled] starts with the cron expression: #[scheduled(\"*/5 * * * *\", …)]",
            ));
        }
    };
    parser.parse2(iter.collect())?;

    let vis = &function.vis;
    let name = &function.sig.ident;
    let docs: Vec<_> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let mut inner = function.clone();
    inner.sig.ident = format_ident!("__{}_run", name);
    inner.vis = syn::Visibility::Inherited;
    inner.attrs.retain(|a| !a.path().is_ident("doc"));
    let inner_name = &inner.sig.ident;
    // One parameter of type `Tick` gets the whole unit; any other gets the dispatch data.
    let takes_tick = match function.sig.inputs.first() {
        Some(syn::FnArg::Typed(arg)) => matches!(
            &*arg.ty,
            syn::Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Tick")
        ),
        _ => false,
    };
    let constructor = if takes_tick {
        quote!(with_tick)
    } else {
        quote!(new)
    };
    let call = if params == 0 {
        quote!(|_: #krate::ScheduleDispatchData| #inner_name())
    } else if takes_tick {
        quote!(|tick: #krate::Tick| #inner_name(tick))
    } else {
        quote!(|data: #krate::ScheduleDispatchData| #inner_name(data))
    };
    Ok(quote! {
        #(#docs)*
        #vis fn #name() -> #krate::ScheduledAction {
            #inner
            #krate::ScheduledAction::#constructor(#cron, #call) #(#options)*
        }
    })
}
