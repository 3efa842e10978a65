//! Size limits on every input a user controls, named once. A parser refuses a larger input
//! before parsing it, with an error naming the file and the limit; a file is read at most one
//! byte past its limit. docs/FORMAT.md ("Limits") lists them.

use regex::Regex;

/// A task document (the operator writes it into a ConfigMap, itself at most 1 MB).
pub const MAX_TASK_BYTES: usize = 1 << 20;
/// A backup or restore configuration file.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// A reset-plan CSV (about a million partitions).
pub const MAX_CSV_BYTES: usize = 64 << 20;
/// An offset snapshot document or a kmap offsets file.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;
/// The source of one regex (`groupsRegex`, `--groups-regex`, a `~regex` topic pattern).
pub const MAX_REGEX_LEN: usize = 4096;
/// The compiled size of one regex (the regex crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Entries in one list of topics, topic patterns or consumer groups.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// `Err(reason)` when `len` bytes exceed `limit`.
pub fn check_size(len: usize, limit: usize) -> std::result::Result<(), String> {
    if len > limit {
        return Err(format!(
            "{len} bytes is larger than the limit of {limit} bytes"
        ));
    }
    Ok(())
}

/// `Err(reason)` when a list has more than [`MAX_LIST_ENTRIES`] entries (the caller names it).
pub fn check_list(len: usize) -> std::result::Result<(), String> {
    if len > MAX_LIST_ENTRIES {
        return Err(format!(
            "has {len} entries, more than the limit of {MAX_LIST_ENTRIES}"
        ));
    }
    Ok(())
}

/// Compiles `source` anchored at both ends (`^(?:source)$`) within [`MAX_REGEX_LEN`] and
/// [`REGEX_SIZE_LIMIT`]; the error says which limit or what syntax is wrong (the caller names
/// the field).
pub fn anchored_regex(source: &str) -> std::result::Result<Regex, String> {
    if source.len() > MAX_REGEX_LEN {
        return Err(format!(
            "is {} bytes long, more than the limit of {MAX_REGEX_LEN}",
            source.len()
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}
/// Nodes a YAML document may expand to, per byte of its text: without aliases every node takes
/// at least one byte (an empty value: the `:` before it).
pub const YAML_NODES_PER_BYTE: usize = 2;

/// `Err(reason)` when the YAML `text`'s aliases expand it past [`YAML_NODES_PER_BYTE`] nodes
/// per byte. Walks the document without keeping anything and stops at the limit, so an alias
/// bomb costs time and memory proportional to the text; other mistakes are left to the parser.
pub fn check_yaml_expansion(text: &str) -> std::result::Result<(), String> {
    let budget = std::cell::Cell::new(text.len().saturating_mul(YAML_NODES_PER_BYTE) + 64);
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match serde::de::DeserializeSeed::deserialize(Walk(&budget), de) {
        Err(_) if budget.get() == 0 => Err(format!(
            "its YAML aliases expand to more than {YAML_NODES_PER_BYTE} values per byte of the document"
        )),
        _ => Ok(()),
    }
}

/// Visits every value of a document, counting down the budget.
struct Walk<'a>(&'a std::cell::Cell<usize>);

impl Walk<'_> {
    fn tick<E: serde::de::Error>(&self) -> std::result::Result<(), E> {
        match self.0.get() {
            0 => Err(E::custom("expansion limit")),
            n => {
                self.0.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.tick()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        self.tick()?;
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        self.tick()?;
        while seq.next_element_seed(Walk(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        self.tick()?;
        while map.next_key_seed(Walk(self.0))?.is_some() {
            map.next_value_seed(Walk(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> std::result::Result<(), A::Error> {
        self.tick()?;
        let ((), variant) = data.variant_seed(Walk(self.0))?;
        serde::de::VariantAccess::newtype_variant_seed(variant, Walk(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_bounded() {
        let re = anchored_regex("a|b").expect("compiles");
        assert!(re.is_match("a") && !re.is_match("ab"));
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert!(anchored_regex(&long)
            .expect_err("too long")
            .contains("limit"));
        // Small source, huge program: a counted repetition of a Unicode class (compiles
        // within the regex crate's default limit).
        let err = anchored_regex(r"\w{100}").expect_err("too big");
        assert!(err.contains("size limit"), "{err}");
    }

    #[test]
    fn yaml_alias_bombs_are_stopped_and_plain_yaml_passes() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = check_yaml_expansion(&doc).expect_err("bomb");
        assert!(err.contains("aliases"), "{err}");
        check_yaml_expansion("a:\nb: [1, {c: d}, ~]\ne: !tag x\n").expect("plain");
        check_yaml_expansion("a: &x [1, 2]\nb: *x\n").expect("a small alias");
    }
}
