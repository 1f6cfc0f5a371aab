//! The error of parsing a parameter given by name (`"q8_0"`, `"required"`, ...): the `FromStr` impls of the
//! parameter enums return it, so every binding reports a bad name the same way.

/// A name that is not one of a parameter's accepted names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is not one of {accepted}")]
pub struct UnknownName {
    /// The parameter (e.g. "KV cache type").
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The accepted names, comma-separated.
    pub accepted: &'static str,
}

#[cfg(test)]
mod tests {
    use crate::model::KvType;

    #[test]
    fn kv_type_names_round_trip_and_bad_names_are_typed_errors() {
        for t in KvType::ALL {
            assert_eq!(t.name().parse::<KvType>(), Ok(t));
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!("Q8".parse::<KvType>(), Ok(KvType::Q8_0));
        let e = "q4".parse::<KvType>().unwrap_err();
        assert_eq!(e.given, "q4");
        assert!(e.to_string().contains("\"q4\"") && e.to_string().contains("f16"), "{e}");
    }
}
