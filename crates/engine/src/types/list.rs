//! The list value type. Placeholder representation, replaced by its family's implementation.

/// A list value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListValue {
    len: usize,
}

impl ListValue {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (an empty collection is deleted from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis's `OBJECT ENCODING` name for the current representation.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        0
    }
}
