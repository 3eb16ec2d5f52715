//! `text_enum!`: an enum of unit variants with one fixed spelling each.

/// Declare an enum of unit variants, each with its text (the catalog's
/// checked text and what operators read): `ALL`, `as_str`, `Display`,
/// `FromStr` (an unknown text is a [`ParseDomainError`](super::ParseDomainError)
/// naming what was expected), rkyv (the wire carries the enum, not the
/// text), with feature `sqlx` a `TEXT` column type and with feature `clap`
/// a `ValueEnum` (a variant marked `[hidden]` is not listed on the
/// command line; whoever receives it refuses it where it has no meaning).
macro_rules! text_enum {
    (@cli $text:literal) => {
        Some(clap::builder::PossibleValue::new($text))
    };
    (@cli $text:literal hidden) => {
        // Not listed; parsed (clap needs every variant to have a value),
        // and refused where it has no meaning.
        Some(clap::builder::PossibleValue::new($text).hide(true))
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $([$flag:ident])?, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the catalog and shown to operators.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            // `pad`: widths and alignment apply (`{:<9}` in listings).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::ParseDomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::ParseDomainError {
                        what: $what,
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        #[cfg(feature = "sqlx")]
        $crate::domain::sql::text_column!($name);

        /// JSON: the text.
        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "clap")]
        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                match self {
                    $($name::$variant => $crate::domain::text_enum::text_enum!(@cli $text $($flag)?),)+
                }
            }
        }
    };
}

pub(crate) use text_enum;
