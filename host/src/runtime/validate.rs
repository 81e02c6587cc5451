//! Upload validation: is this a component Spool can run?
//!
//! Checked once, when a handler is registered (the Spin habit), not when a job calls it.

use wasmtime::wasmparser::Parser;

/// Why a component was refused, or could not be compiled now.
///
/// Most variants are the component's fault; [`Busy`](Self::Busy) and
/// [`Compiler`](Self::Compiler) are not ([`is_transient`](Self::is_transient)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The bytes are over the size limit.
    #[error("the component is {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary (it does not start with the `\\0asm` header)")]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "a core WebAssembly module, not a component: build for the wasm32-wasip2 target or wrap \
         it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The component is malformed (truncated, say) or fails to compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component imports something the host does not provide.
    #[error(
        "the component imports `{0}`, which Spool does not provide (a handler may import \
         spool:job/*, the WASI 0.2 cli, clocks, filesystem, io, random and sockets interfaces, \
         and wasi:http/outgoing-handler and wasi:http/types 0.2)"
    )]
    UnknownImport(String),
    /// The component does not export `run` with the `spool:job/handler` signature, or an
    /// import has a type the host does not match.
    #[error("the component does not fit the spool:job/handler world: {0}")]
    WrongWorld(String),
    /// Compiling took longer than the limit.
    #[error("compiling the component took longer than {0} s")]
    CompileTimeout(u64),
    /// The compiler process went over its CPU time or memory limit, and was stopped.
    #[error("compiling the component went over {0}")]
    CompileLimit(String),
    /// Too many uploads are waiting to be compiled: try again after the given time.
    #[error("too many components are being compiled; try again in {} s", .0.as_secs().max(1))]
    Busy(std::time::Duration),
    /// The compiler process failed for a reason of the host's (it could not be started, say),
    /// not the component's.
    #[error("the compiler failed: {0}")]
    Compiler(String),
}

impl ValidationError {
    /// Returns whether the failure is the host's or the moment's, not the component's: the
    /// same component may load later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ValidationError::Busy(_) | ValidationError::Compiler(_)
        )
    }
}

/// Interface prefixes a handler may import; everything else is refused on upload.
const PROVIDED: &[&str] = &[
    "spool:job/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    // Outbound HTTP, 0.2.x only (0.2.0 to 0.2.12 link; see `capabilities::http`); never
    // `incoming-handler`: a handler serves nothing.
    "wasi:http/outgoing-handler@0.2.",
    "wasi:http/types@0.2.",
];

/// Checks the container format before anything is compiled.
pub fn check_header(bytes: &[u8], max: usize) -> Result<(), ValidationError> {
    if bytes.len() > max {
        return Err(ValidationError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    if Parser::is_component(bytes) {
        Ok(())
    } else if Parser::is_core_wasm(bytes) {
        Err(ValidationError::CoreModule)
    } else {
        Err(ValidationError::NotWasm)
    }
}

/// Checks that every import of a compiled component is one the host provides.
pub fn check_imports<'a>(imports: impl Iterator<Item = &'a str>) -> Result<(), ValidationError> {
    for name in imports {
        if !PROVIDED.iter().any(|prefix| name.starts_with(prefix)) {
            return Err(ValidationError::UnknownImport(name.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        let component = b"\0asm\x0d\x00\x01\x00";
        let core = b"\0asm\x01\x00\x00\x00";
        assert_eq!(check_header(component, 100), Ok(()));
        assert_eq!(check_header(core, 100), Err(ValidationError::CoreModule));
        assert_eq!(
            check_header(b"PK\x03\x04", 100),
            Err(ValidationError::NotWasm)
        );
        assert_eq!(check_header(b"", 100), Err(ValidationError::NotWasm));
        assert!(matches!(
            check_header(component, 4),
            Err(ValidationError::TooLarge { size: 8, max: 4 })
        ));
    }

    #[test]
    fn only_provided_interfaces_may_be_imported() {
        let ok = [
            "spool:job/log@0.1.0",
            "wasi:cli/stdout@0.2.3",
            "wasi:io/streams@0.2.0",
        ];
        assert_eq!(check_imports(ok.into_iter()), Ok(()));
        assert_eq!(
            check_imports(["wasi:io/streams@0.2.0", "acme:evil/backdoor"].into_iter()),
            Err(ValidationError::UnknownImport("acme:evil/backdoor".into()))
        );
        // Outbound HTTP 0.2, behind the tenant's allow-list; serving HTTP or 0.3, never.
        let http = ["wasi:http/outgoing-handler@0.2.0", "wasi:http/types@0.2.12"];
        assert_eq!(check_imports(http.into_iter()), Ok(()));
        assert!(check_imports(["wasi:http/incoming-handler@0.2.0"].into_iter()).is_err());
        assert!(check_imports(["wasi:http/types@0.3.0"].into_iter()).is_err());
    }
}
