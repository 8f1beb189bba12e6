//! The values of the contract's free-form metadata keys (models/README.md, "Metadata"),
//! parsed strictly: `created_unix`, `training_data_sha256`, and the index lists
//! `elites` and `angle_state_indices`. Pure; every refusal says what was expected.

use super::ModelError;

/// Latest accepted `created_unix`: 2100-01-01T00:00:00Z. A larger value is almost surely
/// milliseconds (1.7·10¹² for 2023), which this catches.
pub const MAX_CREATED_UNIX: u64 = 4_102_444_800;

/// `created_unix`: decimal digits only (no sign, point or spaces), seconds since the Unix
/// epoch, at most [`MAX_CREATED_UNIX`].
pub(crate) fn created_unix(value: &str) -> Result<u64, ModelError> {
    let parsed = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse::<u64>().ok())
        .flatten()
        .filter(|secs| *secs <= MAX_CREATED_UNIX);
    parsed.ok_or_else(|| ModelError::BadMetadata {
        key: "created_unix",
        found: value.into(),
        expected: format!(
            "whole seconds since the Unix epoch as decimal digits (e.g. `1700000000`), at most \
             {MAX_CREATED_UNIX} (the year 2100; a larger value is likely milliseconds)"
        ),
    })
}

/// `training_data_sha256`: `none`, or 64 hex digits (returned in lower case).
pub(crate) fn training_data_sha256(value: &str) -> Result<Option<String>, ModelError> {
    if value == "none" {
        return Ok(None);
    }
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(value.to_ascii_lowercase()));
    }
    Err(ModelError::BadMetadata {
        key: "training_data_sha256",
        found: value.into(),
        expected: "64 hex digits (a SHA-256) or `none`".into(),
    })
}

/// A comma-separated list of distinct indices below `bound` (`""`: none), in the file's
/// order. `what` names an index in the error (`member`, `state channel`).
pub(crate) fn indices(
    key: &'static str,
    value: &str,
    bound: usize,
    what: &str,
) -> Result<Vec<usize>, ModelError> {
    let error = |why: String| ModelError::BadMetadata {
        key,
        found: value.into(),
        expected: format!(
            "distinct {what} indices below {bound}, comma-separated (e.g. `0,2`), or empty: {why}"
        ),
    };
    let mut out: Vec<usize> = Vec::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for item in value.split(',').map(str::trim) {
        let index = item
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| item.parse::<usize>().ok())
            .flatten()
            .ok_or_else(|| error(format!("`{item}` is not an index")))?;
        if index >= bound {
            return Err(error(format!("{index} is out of range")));
        }
        if out.contains(&index) {
            return Err(error(format!("{index} is listed twice")));
        }
        out.push(index);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_unix_is_whole_seconds() {
        for (value, ok) in [
            ("1700000000", Some(1_700_000_000)),
            ("0", Some(0)),
            ("4102444800", Some(MAX_CREATED_UNIX)),
            ("1700000000000", None), // milliseconds
            ("1700000000.5", None),
            (" 1700000000", None),
            ("-1", None),
            ("", None),
            ("2023-11-14", None),
        ] {
            assert_eq!(created_unix(value).ok(), ok, "{value:?}");
        }
    }

    #[test]
    fn training_data_sha256_is_none_or_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(training_data_sha256("none").unwrap(), None);
        assert_eq!(
            training_data_sha256(&hex).unwrap().as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(
            training_data_sha256(&hex.to_uppercase())
                .unwrap()
                .as_deref(),
            Some(hex.as_str())
        );
        for bad in [
            "",
            "<hex>",
            "NONE",
            &hex[..63],
            &format!("{hex}0"),
            &"g".repeat(64),
        ] {
            assert!(training_data_sha256(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn index_lists_are_distinct_and_in_range() {
        let list = |v| indices("elites", v, 5, "member");
        assert_eq!(list("").unwrap(), Vec::<usize>::new());
        assert_eq!(list("0,2,4").unwrap(), [0, 2, 4]);
        assert_eq!(list("3, 1").unwrap(), [3, 1]);
        for bad in ["0,7", "1,1", "a", "-1", "0,", "1.0"] {
            let message = list(bad).unwrap_err().to_string();
            assert!(message.contains("`elites`"), "{bad}: {message}");
        }
        assert!(
            list("0,7")
                .unwrap_err()
                .to_string()
                .contains("7 is out of range")
        );
        assert!(
            list("1,1")
                .unwrap_err()
                .to_string()
                .contains("1 is listed twice")
        );
    }
}
