//! The `#[spool_guest::handler]` attribute of Spool's Rust guest SDK.
//!
//! Use it through `spool_guest`, which re-exports it and documents it; this crate only holds
//! the procedural macro, since a proc-macro crate can export nothing else.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, parse_macro_input};

/// Turns a free `fn(Job<T>) -> Result<R, Failure>` into the component's `run` export.
///
/// See `spool_guest::handler` for the full description.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let function = parse_macro_input!(item as ItemFn);
    match expand(args, &function) {
        Ok(tokens) => tokens.into(),
        // Keep the function itself, so that an error in the signature does not also produce
        // a cascade of "cannot find function" errors where it is called.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#function #error).into()
        }
    }
}

fn expand(args: TokenStream2, function: &ItemFn) -> syn::Result<TokenStream2> {
    if !args.is_empty() {
        return Err(syn::Error::new(
            args.span(),
            "`#[spool_guest::handler]` takes no arguments",
        ));
    }
    check_signature(function)?;

    let name = &function.sig.ident;
    // The call is spanned on the signature, so a mismatched argument or return type is
    // reported there rather than on the attribute.
    let call = quote_spanned! {function.sig.span()=>
        ::spool_guest::__private::dispatch(job, #name)
    };
    Ok(quote! {
        #function

        const _: () = {
            struct __SpoolHandler;

            impl ::spool_guest::__private::Guest for __SpoolHandler {
                fn run(
                    job: ::spool_guest::bindings::spool::job::types::Job,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<u8>,
                    ::spool_guest::bindings::spool::job::types::Failure,
                > {
                    #call
                }
            }

            ::spool_guest::bindings::export!(__SpoolHandler with_types_in ::spool_guest::bindings);
        };
    })
}

/// Checks that `function` is a free, plain `fn` with one argument and a return type; the types
/// themselves are checked by the compiler against `spool_guest::__private::dispatch`.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let expected = "a handler is `fn name(job: Job<T>) -> Result<R, Failure>`";
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(
            token.span(),
            format!(
                "a handler cannot be `async`: {expected}; Spool runs one attempt per call and \
                 handler code blocks on its host calls"
            ),
        ));
    }
    if let Some(token) = &sig.constness {
        return Err(syn::Error::new(
            token.span(),
            format!("a handler cannot be `const`: {expected}"),
        ));
    }
    if let Some(token) = &sig.unsafety {
        return Err(syn::Error::new(
            token.span(),
            format!("a handler cannot be `unsafe`: {expected}"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            format!("a handler cannot have an `extern` ABI: {expected}"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("a handler cannot be generic: {expected}, with concrete `T` and `R`"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            format!("a handler is not variadic: {expected}"),
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        return Err(syn::Error::new(
            receiver.span(),
            format!("a handler is a free function, not a method: {expected}"),
        ));
    }
    if sig.inputs.len() != 1 {
        let span = if sig.inputs.is_empty() {
            sig.paren_token.span.join()
        } else {
            sig.inputs.span()
        };
        return Err(syn::Error::new(
            span,
            format!(
                "a handler takes exactly one argument, found {}: {expected}",
                sig.inputs.len()
            ),
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(syn::Error::new(
            sig.paren_token.span.close(),
            format!("a handler returns `Result<R, Failure>`: {expected}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> String {
        let function: ItemFn = syn::parse_str(source).unwrap();
        expand(TokenStream2::new(), &function)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_plain_handler_expands_to_the_function_and_the_export() {
        let function: ItemFn =
            syn::parse_str("fn run(job: Job<Order>) -> Result<Receipt, Failure> { todo!() }")
                .unwrap();
        let expanded = expand(TokenStream2::new(), &function).unwrap().to_string();
        assert!(expanded.starts_with("fn run"), "{expanded}");
        assert!(expanded.contains("dispatch (job , run)"), "{expanded}");
        assert!(expanded.contains("export !"), "{expanded}");
    }

    #[test]
    fn async_handlers_are_rejected() {
        assert!(error_of("async fn run(job: Job<u8>) -> Result<(), Failure> {}").contains("async"));
    }

    #[test]
    fn handlers_take_exactly_one_argument() {
        assert!(error_of("fn run() -> Result<(), Failure> {}").contains("found 0"));
        assert!(
            error_of("fn run(a: Job<u8>, b: u8) -> Result<(), Failure> {}").contains("found 2")
        );
    }

    #[test]
    fn handlers_must_return_something() {
        assert!(error_of("fn run(job: Job<u8>) {}").contains("returns `Result<R, Failure>`"));
    }

    #[test]
    fn generic_handlers_are_rejected() {
        assert!(error_of("fn run<T>(job: Job<T>) -> Result<(), Failure> {}").contains("generic"));
    }

    #[test]
    fn methods_are_rejected() {
        assert!(error_of("fn run(self) -> Result<(), Failure> {}").contains("not a method"));
    }

    #[test]
    fn unsafe_and_const_handlers_are_rejected() {
        assert!(error_of("unsafe fn run(j: Job<u8>) -> Result<(), Failure> {}").contains("unsafe"));
        assert!(error_of("const fn run(j: Job<u8>) -> Result<(), Failure> {}").contains("const"));
    }

    #[test]
    fn arguments_to_the_attribute_are_rejected() {
        let function: ItemFn =
            syn::parse_str("fn run(job: Job<u8>) -> Result<(), Failure> {}").unwrap();
        let error = expand(quote!(retries = 3), &function)
            .unwrap_err()
            .to_string();
        assert!(error.contains("takes no arguments"), "{error}");
    }
}
