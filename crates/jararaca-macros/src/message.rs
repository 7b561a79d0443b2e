//! `#[derive(Message)]`: a type's topic and kind for the message bus.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut topic: Option<LitStr> = None;
    let mut kind: Option<LitStr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("message")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("topic") {
                topic = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("kind") {
                kind = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("expected `topic = \"…\"` or `kind = \"task\" | \"event\"`"))
            }
        })?;
    }
    let Some(topic) = topic else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "a Message needs `#[message(topic = \"…\")]`",
        ));
    };
    if topic.value().is_empty() || topic.value().contains(['#', '*']) {
        return Err(syn::Error::new_spanned(
            &topic,
            "a topic is a non-empty dotted name without `#` or `*`",
        ));
    }
    let krate = bus_path();
    let kind = match kind.as_ref().map(LitStr::value).as_deref() {
        None | Some("task") => quote!(#krate::MessageKind::Task),
        Some("event") => quote!(#krate::MessageKind::Event),
        Some(_) => {
            return Err(syn::Error::new_spanned(
                kind,
                "the kind is \"task\" or \"event\"",
            ));
        }
    };
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Message for #name #ty_generics #where_clause {
            const TOPIC: &'static str = #topic;
            const KIND: #krate::MessageKind = #kind;
        }
    })
}

/// `jararaca_bus` directly, or through the facade's `jararaca::bus`.
fn bus_path() -> syn::Path {
    crate::capability_path("jararaca-bus", "bus")
}
