//! Sizes in bytes, written as a number or with a unit.

use serde::Deserialize;

/// A size in bytes, written as a number or with a unit (`"512KiB"`, `"5MiB"`, `"10MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeText")]
pub struct ByteSize(pub usize);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Number(i64),
    Text(String),
}

impl TryFrom<SizeText> for ByteSize {
    type Error = String;

    fn try_from(value: SizeText) -> Result<Self, String> {
        let bytes = match value {
            SizeText::Number(n) => {
                usize::try_from(n).map_err(|_| format!("size {n} must not be negative"))?
            }
            SizeText::Text(text) => parse_size(&text)?,
        };
        if bytes == 0 {
            return Err("size must be greater than 0".into());
        }
        Ok(Self(bytes))
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 512KiB or 5MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert!(parse_size("5 parsecs").is_err());
    }
}
