//! What the two limit tables in [`super::limits`] generate. Each table lists every limit once
//! (name, type, default, bounds, docs); these macros write out the structs and every
//! field-by-field function from it, so that a new limit is one row and no list of fields is
//! written twice.
//!
//! The structs stay flat on purpose: serde's `flatten` does not work with
//! `deny_unknown_fields`, which the API's request bodies need.

/// Generates the per-attempt [`Limits`](super::Limits) from rows of
/// `/// doc` `name: Type = default,`: the struct, its `Default` and `capped_by`.
macro_rules! attempt_limits {
    (
        $(#[doc = $struct_doc:tt])*
        pub struct $Limits:ident {
            $(
                $(#[doc = $doc:tt])*
                $name:ident : $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[doc = $struct_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $Limits {
            $(
                $(#[doc = $doc])*
                pub $name: $ty,
            )*
        }

        impl Default for $Limits {
            fn default() -> Self {
                $Limits {
                    $($name: $default,)*
                }
            }
        }

        impl $Limits {
            /// Returns these limits with every field lowered to at most `cap`'s.
            pub fn capped_by(&self, cap: &$Limits) -> $Limits {
                $Limits {
                    $($name: self.$name.min(cap.$name),)*
                }
            }
        }
    };
}

/// Generates a tenant's limits from rows of
///
/// ```text
/// /// What the field means, as a tenant is given it.
/// name: Type = default, [bounds], attempt field(conversion), job "doc", shown "doc";
/// ```
///
/// - `bounds`: `> 0` (zero is refused), `<= MAX` (refused above, with `=> "message"` to say
///   it otherwise), both (`> 0, <= MAX`), or none (`[]`).
/// - `attempt field(conversion)` (optional): the per-attempt [`Limits`](super::Limits) field
///   the limit caps, and the function from this unit to that one.
/// - `job "doc"` (optional, after `attempt`): a job may ask for less than its tenant's;
///   the field of the job's spec, with its doc.
/// - `shown "doc"`: the doc of the effective value, with its default.
///
/// It writes the three structs named in its header (the tenant's spec, the effective
/// limits, a job's spec) and `DEFAULT`, `resolve`, `attempt_caps`, `merged`, `check`,
/// `Limits::with` and the job spec's `against`.
macro_rules! tenant_limits {
    (
        $(#[doc = $spec_doc:tt])*
        pub struct $Spec:ident;
        $(#[doc = $limits_doc:tt])*
        pub struct $Limits:ident;
        $(#[doc = $job_spec_doc:tt])*
        pub struct $JobSpec:ident;
        $(
            $(#[doc = $doc:tt])*
            $name:ident : $ty:ident = $default:expr, [$($bound:tt)*],
            $(attempt $attempt:ident($conv:expr), $(job $job_doc:tt,)?)?
            shown $shown:tt;
        )*
    ) => {
        $(#[doc = $spec_doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize,
        )]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $Spec {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        $(#[doc = $limits_doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
        )]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        pub struct $Limits {
            $(
                #[doc = $shown]
                pub $name: $ty,
            )*
        }

        $(#[doc = $job_spec_doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize,
        )]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $JobSpec {
            $($($(
                #[doc = $job_doc]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )?)?)*
        }

        impl $Limits {
            /// The defaults.
            pub const DEFAULT: $Limits = $Limits {
                $($name: $default,)*
            };

            /// Returns `spec` over the defaults.
            pub fn resolve(spec: &$Spec) -> $Limits {
                let d = $Limits::DEFAULT;
                $Limits {
                    $($name: spec.$name.unwrap_or(d.$name),)*
                }
            }

            /// The per-attempt caps these limits put on every job of the tenant; what no
            /// tenant limit caps takes its default.
            pub fn attempt_caps(&self) -> $crate::limits::Limits {
                $crate::limits::Limits {
                    $($($attempt: $conv(self.$name),)?)*
                    ..$crate::limits::Limits::default()
                }
            }
        }

        impl $Spec {
            /// Returns `self` with every field `patch` sets replaced.
            pub fn merged(&self, patch: &$Spec) -> $Spec {
                $Spec {
                    $($name: patch.$name.or(self.$name),)*
                }
            }

            /// Returns a description of the first value that is out of range, if any (every
            /// value under its lower bound first, then every value over its upper bound).
            pub fn check(&self) -> Result<(), String> {
                $(limit_bound!(lower $name self.$name; $($bound)*);)*
                $(limit_bound!(upper $name self.$name; $($bound)*);)*
                Ok(())
            }
        }

        impl $JobSpec {
            /// What a job asks for of each limit it may ask for, beside its tenant's cap:
            /// `(name, asked, cap)`.
            pub fn against(
                &self,
                caps: &$Limits,
            ) -> impl Iterator<Item = (&'static str, Option<u64>, u64)> {
                [$($($(limit_row!($job_doc => (
                    stringify!($name),
                    self.$name.map(u64::from),
                    u64::from(caps.$name),
                )),)?)?)*]
                .into_iter()
            }
        }

        impl $crate::limits::Limits {
            /// Returns these limits with the fields `spec` sets replaced (in these units).
            pub fn with(&self, spec: &$JobSpec) -> $crate::limits::Limits {
                $crate::limits::Limits {
                    $($($($attempt: limit_row!($job_doc => spec.$name.map_or(self.$attempt, $conv)),)?)?)*
                    ..*self
                }
            }
        }
    };
}

/// One bound of `tenant_limits!`'s `check`: `lower` checks `> 0`, `upper` checks `<= MAX`.
macro_rules! limit_bound {
    (lower $name:ident $value:expr; > 0 $(, $($rest:tt)*)?) => {
        if $value == Some(0) {
            return Err(format!("limits.{} must be greater than 0", stringify!($name)));
        }
    };
    (lower $name:ident $value:expr; $($rest:tt)*) => {};
    (upper $name:ident $value:expr; > 0 $(, $($rest:tt)*)?) => {
        limit_bound!(upper $name $value; $($($rest)*)?)
    };
    (upper $name:ident $value:expr; <= $max:expr => $message:literal) => {
        if $value.is_some_and(|v| v > $max) {
            return Err(format!("limits.{} {}", stringify!($name), $message));
        }
    };
    (upper $name:ident $value:expr; <= $max:expr) => {
        let max = $max;
        if $value.is_some_and(|v| v > max) {
            return Err(format!("limits.{} must be at most {max}", stringify!($name)));
        }
    };
    (upper $name:ident $value:expr;) => {};
}

/// `$expr`, written once for each row that has `$marker` (the marker only selects the rows).
macro_rules! limit_row {
    ($marker:tt => $expr:expr) => {
        $expr
    };
}
