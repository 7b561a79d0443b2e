//! Derives and attributes for Jararaca.
//!
//! Everything generated here can be written by hand with the public APIs of the other crates;
//! the macros only save typing.
//!
//! * `#[derive(Injectable)]` implements `jararaca_di::Injectable` (constructor injection).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, Path, PathArguments, Type, parse_macro_input,
};

/// Implements `jararaca_di::Injectable` for a struct, so the container builds it from its
/// dependencies.
///
/// Each field is one of:
/// * `Arc<T>` — resolved by type;
/// * `#[inject(token = CONST)] Arc<T>` — resolved under a `Token<T>` constant;
/// * `#[inject(default)] T` — `T::default()`, not injected.
///
/// `#[inject(crate = path)]` on the struct names the `jararaca_di` crate when it is reached
/// through another path (for example `jararaca::di`).
///
/// ```ignore
/// #[derive(Injectable)]
/// struct TaskService {
///     repo: Arc<TaskRepository>,
///     #[inject(token = APP_NAME)]
///     app_name: Arc<String>,
///     #[inject(default)]
///     counter: AtomicU64,
/// }
/// ```
#[proc_macro_derive(Injectable, attributes(inject))]
pub fn derive_injectable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match injectable(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

enum FieldSource {
    Type(Type),
    Token(syn::Expr),
    Default,
}

fn crate_path(attrs: &[syn::Attribute]) -> syn::Result<Path> {
    let mut path: Path = syn::parse_quote!(::jararaca_di);
    for attr in attrs.iter().filter(|a| a.path().is_ident("inject")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                path = meta.value()?.parse()?;
                Ok(())
            } else {
                Err(meta.error("expected `crate = path` on the struct"))
            }
        })?;
    }
    Ok(path)
}

fn arc_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Arc" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn field_source(field: &syn::Field) -> syn::Result<FieldSource> {
    let mut source = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("inject")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                source = Some(FieldSource::Default);
                Ok(())
            } else if meta.path.is_ident("token") {
                source = Some(FieldSource::Token(meta.value()?.parse()?));
                Ok(())
            } else {
                Err(meta.error("expected `token = CONST` or `default`"))
            }
        })?;
    }
    match source {
        Some(FieldSource::Default) => Ok(FieldSource::Default),
        Some(FieldSource::Token(token)) => {
            arc_inner(&field.ty).ok_or_else(|| arc_error(field))?;
            Ok(FieldSource::Token(token))
        }
        _ => arc_inner(&field.ty)
            .cloned()
            .map(FieldSource::Type)
            .ok_or_else(|| arc_error(field)),
    }
}

fn arc_error(field: &syn::Field) -> syn::Error {
    syn::Error::new(
        field.ty.span(),
        "an Injectable field must be `Arc<T>` (resolved by type), `#[inject(token = TOKEN)] Arc<T>` \
         or `#[inject(default)]`",
    )
}

fn injectable(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let krate = crate_path(&input.attrs)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "Injectable can only be derived for structs",
        ));
    };
    let mut deps = Vec::new();
    let mut values = Vec::new();
    for field in data.fields.iter() {
        let span = field.ty.span();
        let value = match field_source(field)? {
            FieldSource::Type(inner) => {
                deps.push(quote_spanned!(span=> #krate::Key::of::<#inner>()));
                quote_spanned!(span=> resolver.get::<#inner>().await?)
            }
            FieldSource::Token(token) => {
                deps.push(quote_spanned!(span=> (#token).key()));
                quote_spanned!(span=> resolver.get_token(#token).await?)
            }
            FieldSource::Default => quote_spanned!(span=> ::core::default::Default::default()),
        };
        values.push((field.ident.clone(), value));
    }
    let construct = match &data.fields {
        Fields::Named(_) => {
            let fields = values.iter().map(|(ident, value)| quote!(#ident: #value));
            quote!(Self { #(#fields),* })
        }
        Fields::Unnamed(_) => {
            let fields = values.iter().map(|(_, value)| value);
            quote!(Self(#(#fields),*))
        }
        Fields::Unit => quote!(Self),
    };
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Injectable for #name #ty_generics #where_clause {
            fn dependencies() -> ::std::vec::Vec<#krate::Key> {
                ::std::vec![#(#deps),*]
            }

            async fn inject(resolver: #krate::Resolver) -> ::core::result::Result<Self, #krate::BoxError> {
                ::core::result::Result::Ok(#construct)
            }
        }
    })
}
